"""API tokens: only a hash of each token is kept."""

from __future__ import annotations

import sqlite3
import time

from roost.errors import Conflict, NotFound
from roost.store.db import Database


class TokenTable:
    """Mixed into Store."""

    _db: Database

    async def create_token(self, name: str, token_hash: str) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                raise Conflict(
                    f"a token named '{name}' already exists", hint=f"revoke it first: roost token revoke {name}"
                )
            conn.execute(
                "INSERT INTO tokens (name, hash, created_at) VALUES (?, ?, ?)", (name, token_hash, time.time())
            )

        await self._db.write(insert)

    async def revoke_token(self, name: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM tokens WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"no token named '{name}'", hint="`roost token list` shows them")

        await self._db.write(delete)

    async def list_tokens(self) -> list[tuple[str, float, float | None]]:
        """(name, created_at, last_used_at) of every token."""
        return await self._db.read(
            lambda conn: [
                (r["name"], r["created_at"], r["last_used_at"])
                for r in conn.execute("SELECT name, created_at, last_used_at FROM tokens ORDER BY name")
            ]
        )

    async def token_name(self, token_hash: str) -> str | None:
        """The name of the token with this hash, or None."""

        def select(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT name FROM tokens WHERE hash = ?", (token_hash,)).fetchone()
            return None if row is None else str(row["name"])

        return await self._db.read(select)

    async def has_tokens(self) -> bool:
        return await self._db.read(lambda conn: conn.execute("SELECT 1 FROM tokens LIMIT 1").fetchone() is not None)
