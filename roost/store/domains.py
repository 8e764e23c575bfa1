"""Custom domains: which host routes to which app, one app per host. A host of no app (app NULL)
is the admin API's own name: taken, but never routed."""

from __future__ import annotations

import sqlite3

from roost.errors import Conflict, NotFound
from roost.store.db import Database


class DomainTable:
    """`store.domains`: custom host -> app, on the store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_domain(self, host: str, app: str) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT app FROM domains WHERE host = ?", (host,)).fetchone()
            if row is not None and row["app"] is None:
                raise Conflict(f"{host} is the admin API's own name", hint="give the app another name")
            if row is not None:
                raise Conflict(f"{host} already routes to app '{row['app']}'", hint="remove it there first")
            if conn.execute("SELECT 1 FROM apps WHERE name = ?", (app,)).fetchone() is None:
                raise NotFound(f"no app named '{app}'", hint="`roost list` shows the apps there are")
            conn.execute("INSERT INTO domains (host, app) VALUES (?, ?)", (host, app))

        await self._db.write(insert)

    async def remove_domain(self, host: str, app: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM domains WHERE host = ? AND app = ?", (host, app)).rowcount == 0:
                raise NotFound(f"app '{app}' has no domain {host}", hint=f"`roost domains {app} list` shows them")

        await self._db.write(delete)

    async def list_domains(self, app: str | None = None) -> dict[str, str]:
        """Custom host -> app (the admin API's own name is no app's, so never listed)."""

        def select(conn: sqlite3.Connection) -> dict[str, str]:
            if app is None:
                rows = conn.execute("SELECT host, app FROM domains WHERE app IS NOT NULL ORDER BY host")
            else:
                rows = conn.execute("SELECT host, app FROM domains WHERE app = ? ORDER BY host", (app,))
            return {r["host"]: r["app"] for r in rows}

        return await self._db.read(select)
