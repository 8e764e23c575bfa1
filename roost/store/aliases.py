"""Branch aliases: one row per (app, alias) naming the deployment its preview host serves.

Rows go with their app (and deployment) by the schema's cascades; the rules of a valid alias
live in roost/model.py, checked by control before anything is written here.
"""

from __future__ import annotations

import sqlite3
import time

from roost.errors import NotFound
from roost.model import Alias, AppName, DeploymentId
from roost.store.db import Database


def _alias(row: sqlite3.Row) -> Alias:
    return Alias(AppName(row["app"]), row["name"], DeploymentId(row["deployment"]), row["updated_at"])


def no_alias(app: str, name: str) -> NotFound:
    return NotFound(f"app '{app}' has no alias '{name}'", hint=f"`roost alias list {app}` shows its aliases")


class AliasTable:
    """The `aliases` table. Example::

    await store.aliases.point(AppName("shop"), "feature-x", DeploymentId("ab12cd34"))
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    async def point(self, app: AppName, name: str, deployment: DeploymentId) -> Alias:
        """Create the alias, or move it to `deployment` unless it serves a newer push already
        (builds finish out of order); the alias as it now is."""
        now = time.time()

        def upsert(conn: sqlite3.Connection) -> Alias:
            conn.execute(
                "INSERT INTO aliases (app, name, deployment, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (app, name) DO UPDATE SET deployment = excluded.deployment,"
                " updated_at = excluded.updated_at"
                " WHERE (SELECT seq FROM deployments WHERE id = excluded.deployment)"
                " > (SELECT seq FROM deployments WHERE id = aliases.deployment)",
                (app, name, deployment, now),
            ).close()
            row = conn.execute("SELECT * FROM aliases WHERE app = ? AND name = ?", (app, name)).fetchone()
            return _alias(row)

        return await self._db.write(upsert)

    async def get(self, app: str, name: str) -> Alias:
        """The alias; raises NotFound."""

        def select(conn: sqlite3.Connection) -> Alias:
            row = conn.execute("SELECT * FROM aliases WHERE app = ? AND name = ?", (app, name)).fetchone()
            if row is None:
                raise no_alias(app, name)
            return _alias(row)

        return await self._db.read(select)

    async def of_app(self, app: str) -> list[Alias]:
        """The app's aliases by name."""
        return await self._db.read(
            lambda conn: [_alias(r) for r in conn.execute("SELECT * FROM aliases WHERE app = ? ORDER BY name", (app,))]
        )

    async def every(self) -> dict[AppName, dict[str, DeploymentId]]:
        """Every app's aliases (app -> alias -> deployment), for the route table."""

        def select(conn: sqlite3.Connection) -> dict[AppName, dict[str, DeploymentId]]:
            found: dict[AppName, dict[str, DeploymentId]] = {}
            for row in conn.execute("SELECT app, name, deployment FROM aliases"):
                found.setdefault(AppName(row["app"]), {})[row["name"]] = DeploymentId(row["deployment"])
            return found

        return await self._db.read(select)

    async def remove(self, app: str, name: str) -> None:
        """Forget the alias; raises NotFound."""

        def delete(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM aliases WHERE app = ? AND name = ?", (app, name)).rowcount == 0:
                raise no_alias(app, name)

        await self._db.write(delete)
