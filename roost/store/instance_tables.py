"""Instance records: what the runtime started, kept so a restart can end what a crashed run left."""

from __future__ import annotations

import sqlite3
import time

from roost.model import InstanceRecord
from roost.store.db import Database
from roost.store.records import instance_from_row

LIVE_STATES = ("starting", "ready", "draining")


class InstanceTable:
    """`store.instances`: one row per instance (for recovery after a crash), on the store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
