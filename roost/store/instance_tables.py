"""Instance records and custom domains: the store's runtime-facing tables."""

from __future__ import annotations

import sqlite3
import time

from roost.errors import Conflict, NotFound
from roost.model import InstanceRecord
from roost.store.db import Database
from roost.store.records import instance_from_row

LIVE_STATES = ("starting", "ready", "draining")


class InstanceTables:
    """Mixed into Store: instances (for recovery after a crash) and domains."""

    _db: Database

    async def record_instance(self, record: InstanceRecord) -> None:
        """Insert or update one instance's row (its pid, process group and state)."""

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO instances (id, app, deployment, pid, pgid, state, started_at, stopped_at, reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, pgid = excluded.pgid, state = excluded.state,"
                " stopped_at = excluded.stopped_at, reason = excluded.reason",
                (
                    record.id,
                    record.app,
                    record.deployment,
                    record.pid,
                    record.pgid,
                    record.state.value,
                    record.started_at,
                    record.stopped_at,
                    record.reason,
                ),
            )
            # Keep the table small: forget long-finished instances.
            conn.execute(
                "DELETE FROM instances WHERE state IN ('stopped', 'crashed') AND stopped_at < ?",
                (time.time() - 86400,),
            )

        await self._db.write(upsert)

    async def live_instances(self) -> list[InstanceRecord]:
        """Instances not known to be stopped: after a crash, the strays to kill."""
        placeholders = ", ".join("?" for _ in LIVE_STATES)
        return await self._db.read(
            lambda conn: [
                instance_from_row(r)
                for r in conn.execute(
                    f"SELECT * FROM instances WHERE state IN ({placeholders}) ORDER BY started_at",  # noqa: S608
                    LIVE_STATES,
                )
            ]
        )

    async def close_live_instances(self, reason: str) -> int:
        """Mark every live instance stopped (after the strays were killed)."""

        def update(conn: sqlite3.Connection) -> int:
            placeholders = ", ".join("?" for _ in LIVE_STATES)
            cursor = conn.execute(
                f"UPDATE instances SET state = 'stopped', stopped_at = ?, reason = ? WHERE state IN ({placeholders})",  # noqa: S608
                (time.time(), reason, *LIVE_STATES),
            )
            return cursor.rowcount

        return await self._db.write(update)

    async def add_domain(self, host: str, app: str) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT app FROM domains WHERE host = ?", (host,)).fetchone()
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
        """Custom host -> app."""

        def select(conn: sqlite3.Connection) -> dict[str, str]:
            if app is None:
                rows = conn.execute("SELECT host, app FROM domains ORDER BY host")
            else:
                rows = conn.execute("SELECT host, app FROM domains WHERE app = ? ORDER BY host", (app,))
            return {r["host"]: r["app"] for r in rows}

        return await self._db.read(select)
