"""App secrets as ciphertext: the store never sees a plain value."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping

from roost.errors import NotFound
from roost.store.db import Database


class SecretTable:
    """`store.secrets`: each app's sealed secrets, on the store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def set_secrets(self, app: str, values: Mapping[str, str]) -> None:
        """Insert or replace encrypted values, all in one transaction."""
        now = time.time()

        def upsert(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM apps WHERE name = ?", (app,)).fetchone() is None:
                raise NotFound(f"no app named '{app}'", hint="`roost list` shows the apps there are")
            conn.executemany(
                "INSERT INTO secrets (app, name, value, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(app, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                [(app, name, value, now) for name, value in values.items()],
            )

        await self._db.write(upsert)

    async def unset_secrets(self, app: str, names: list[str]) -> list[str]:
        """Remove the named secrets; returns the names that existed."""

        def delete(conn: sqlite3.Connection) -> list[str]:
            removed = []
            for name in names:
                if conn.execute("DELETE FROM secrets WHERE app = ? AND name = ?", (app, name)).rowcount:
                    removed.append(name)
            return removed

        return await self._db.write(delete)

    async def sealed(self, app: str) -> dict[str, str]:
        """name -> ciphertext."""
        return await self._db.read(
            lambda conn: {
                r["name"]: r["value"] for r in conn.execute("SELECT name, value FROM secrets WHERE app = ?", (app,))
            }
        )
