"""Quotas per owner: one row per pattern, its caps (NULL: no cap of that kind)."""

from __future__ import annotations

import sqlite3
import time

from roost.errors import NotFound
from roost.model import Quota
from roost.store.db import Database


class QuotaTable:
    """`store.quotas`: quotas per owner pattern, on the store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def set_quota(self, quota: Quota) -> None:
        """Create or replace the quota of `quota.pattern`."""
        await self._db.write(
            lambda conn: conn.execute(
                "INSERT INTO quotas (pattern, instances, memory, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (pattern) DO UPDATE SET instances = excluded.instances, memory = excluded.memory,"
                " updated_at = excluded.updated_at",
                (quota.pattern, quota.instances, quota.memory, time.time()),
            ).close()
        )

    async def remove_quota(self, pattern: str) -> None:
        """Forget the quota of `pattern`; raises NotFound."""

        def delete(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM quotas WHERE pattern = ?", (pattern,)).rowcount == 0:
                raise NotFound(f'no quota for "{pattern}"', hint="`roost quota list` shows them")

        await self._db.write(delete)

    async def list_quotas(self) -> list[Quota]:
        return await self._db.read(
            lambda conn: [
                Quota(r["pattern"], r["instances"], r["memory"])
                for r in conn.execute("SELECT * FROM quotas ORDER BY pattern")
            ]
        )
