"""How many instances of a deployment run: starts for requests that wait (`request_capacity`),
one start a caller waits for (`start_instance`) and convergence on a count (`scale_to`), each
start admitted under the host's memory budget first.

Never starts beyond `scale.max`, nor while the back-off of a crash-looping deployment runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from roost.errors import Unavailable
from roost.model import DeploymentId, InstanceState
from roost.runtime.admission import MemoryAdmission
from roost.runtime.backoff import BACKOFF_SLACK
from roost.runtime.capacity import clamp_count, floor_count, pick_surplus, starts_needed
from roost.runtime.keeper import InstanceKeeper
from roost.runtime.notify import Notifier
from roost.runtime.pool import Pool, running_pool
from roost.runtime.protocol import InstanceInfo
from roost.runtime.upkeep import Upkeep

RETRY_AFTER_FULL = 5  # seconds a client is told to wait when the host has no room


class Scaler:
    """The runtime's `request_capacity`, `start_instance` and `scale_to`, over the pools it shares."""

    def __init__(
        self,
        pools: Mapping[DeploymentId, Pool],
        keeper: InstanceKeeper,
        admission: MemoryAdmission,
        notifier: Notifier,
        upkeep: Upkeep,
    ) -> None:
        self._pools = pools
        self._keeper = keeper
        self._admission = admission
        self._notifier = notifier
        self._upkeep = upkeep

    def request_capacity(self, deployment: DeploymentId, slots: int) -> None:
        pool = self._pools.get(deployment)
        if pool is None or pool.retiring or self._upkeep.closing:
            return
        pool.held = False
        wait = pool.backoff_until - time.monotonic()
        if pool.failing_to_start and wait > 0:
            reason = f"{pool.last_failure} (next start in {wait:.0f}s)"
            asyncio.get_running_loop().call_soon(self._notifier.start_failed, deployment, reason)
            return
        config = pool.spec.config
        count = starts_needed(
            slots=slots,
            free=pool.free_slots(),
            starting=pool.count(InstanceState.STARTING),
            live=len(pool.live()),
            concurrency=config.scale.concurrency,
            maximum=config.scale.max,
        )
        admitted = self._admission.admit(pool, count)
        if admitted:
            self._record_demand_start(pool, slots, admitted)
        for _ in range(admitted):
            self._keeper.start(pool)
        if count and not admitted and not pool.live():
            reason = f"the host's memory budget ({self._admission.budget()}) is full"
            asyncio.get_running_loop().call_soon(self._notifier.start_failed, deployment, reason, RETRY_AFTER_FULL)

    def _record_demand_start(self, pool: Pool, waiting: int, admitted: int) -> None:
        """Starts for requests that found no free slot are scale decisions too (the autoscaler's
        windows see them only a tick later): the same `scale` event, from, to and why."""
        current = len(pool.live())
        wanted = "a request is" if waiting == 1 else f"{waiting} requests are"
        reason = f"{wanted} waiting for a free slot"
        self._notifier.event(
            pool.spec.app,
            "scale",
            f"{pool.deployment}: {current} -> {current + admitted} instances ({reason})",
            deployment=pool.deployment,
            **{"from": current, "to": current + admitted, "reason": reason},
        )

    async def start_instance(self, deployment: DeploymentId) -> InstanceInfo:
        pool = running_pool(self._pools, deployment, self._upkeep.closing)
        pool.held = False
        live = pool.live()
        if live and len(live) >= max(1, pool.spec.config.scale.max):
            ready = pool.ready()
            if ready:
                return min(ready, key=lambda i: i.in_flight).info()
            instance = live[0]
        elif not self._admission.admit(pool, 1):
            raise Unavailable(
                f"no room for another instance of {pool.spec.app}: the host's memory budget "
                f"({self._admission.budget()}) is full",
                hint="stop an app, lower limits.memory, or raise --memory-budget",
            )
        else:
            instance = self._keeper.start(pool)
        outcome = await self._keeper.wait_ready(instance)
        if isinstance(outcome, str):
            raise Unavailable(
                f"instance {instance.id} of {pool.spec.app} could not start: {outcome}",
                hint=f"see `roost logs {pool.spec.app}`",
            )
        return outcome

    async def scale_to(self, deployment: DeploymentId, count: int, reason: str) -> None:
        pool = running_pool(self._pools, deployment, self._upkeep.closing)
        target = clamp_count(pool.spec.config, count)
        if pool.held and target <= floor_count(pool.spec.config):
            return  # drained, or crashed with auto_restart off: only a request or a restart brings it back
        pool.held = False
        live = pool.live()
        if target > len(live):
            wait = pool.backoff_until - time.monotonic()
            if wait > BACKOFF_SLACK:  # crash-looping: the back-off decides when the floor comes back, not demand
                self._keeper.restart_later(pool, wait)
                return
            started = [self._keeper.start(pool) for _ in range(self._admission.admit(pool, target - len(live)))]
            await asyncio.gather(*(self._keeper.wait_ready(i) for i in started))
        elif target < len(live):
            candidates = [(i, i.is_ready(), i.in_flight, i.started_at) for i in live]
            surplus = pick_surplus(candidates, len(live) - target)
            await asyncio.gather(*(self._keeper.stop(pool, i, reason) for i in surplus))
