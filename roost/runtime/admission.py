"""Admission under the host's memory budget: how many new instances of a deployment fit,
after stopping the least recently used idle instances of other apps to make room.

Counts on the loop, synchronously (no `await` between counting and the starts it allows);
the stops it orders run in the background.
"""

from __future__ import annotations

from collections.abc import Mapping

from roost.model import DeploymentId, InstanceId
from roost.runtime.budget import Candidate, describe, plan_room
from roost.runtime.instance import Instance
from roost.runtime.keeper import InstanceKeeper
from roost.runtime.pool import Pool
from roost.runtime.tuning import RuntimeSettings
from roost.runtime.upkeep import Upkeep


class MemoryAdmission:
    """Asked by the scaler before any start; `budget` 0 admits everything."""

    def __init__(
        self, settings: RuntimeSettings, pools: Mapping[DeploymentId, Pool], keeper: InstanceKeeper, upkeep: Upkeep
    ) -> None:
        self.settings = settings
        self._pools = pools
        self._keeper = keeper
        self._upkeep = upkeep
        self._evicting: set[InstanceId] = set()  # stopping to make room under the memory budget

    def budget(self) -> str:
        """The budget in words ("2 GB"), for messages."""
        return describe(self.settings.memory_budget)

    def admit(self, pool: Pool, count: int) -> int:
        """How many of `count` new instances of `pool` the memory budget allows, after stopping
        least recently used idle instances of other apps to make room."""
        budget = self.settings.memory_budget
        if budget <= 0 or count <= 0:
            return count
        need = pool.spec.config.limits.memory
        live = [(p, i) for p in self._pools.values() for i in p.live()]
        reserved = sum(i.spec.config.limits.memory for _, i in live if i.id not in self._evicting)
        candidates = [
            Candidate(i.id, i.spec.config.limits.memory, i.last_used)
            for p, i in live
            if p.spec.app != pool.spec.app and i.is_ready() and i.in_flight == 0 and i.id not in self._evicting
        ]
        admitted = 0
        while admitted < count:
            plan = plan_room(budget, reserved, need, candidates)
            if not plan.fits:
                break
            for key in plan.evict:
                victim_pool, victim = self._keeper.index[key]
                self._evicting.add(key)
                reserved -= victim.spec.config.limits.memory
                reason = f"stopped to make room for {pool.spec.app} (host memory budget {describe(budget)} full)"
                self._upkeep.keep_task(self._evict(victim_pool, victim, reason), name=f"evict {key}")
            candidates = [c for c in candidates if c.key not in plan.evict]
            reserved += need
            admitted += 1
        return admitted

    async def _evict(self, pool: Pool, instance: Instance, reason: str) -> None:
        try:
            await self._keeper.stop(pool, instance, reason)
        finally:
            self._evicting.discard(instance.id)
