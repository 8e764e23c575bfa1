"""What the supervisor knows of one deployment: its spec, instances, zygote and crash streak.

Plain bookkeeping owned by the event loop; counting and choosing live in
`capacity`, acting in `supervisor`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping

from roost.errors import Unavailable
from roost.model import DeploymentId, InstanceState
from roost.runtime.backoff import is_crash_looping
from roost.runtime.capacity import floor_count
from roost.runtime.instance import Instance
from roost.runtime.protocol import DeploymentSpec, DeploymentStats, InstanceInfo
from roost.runtime.zygote import Zygote

FINISHED_KEPT = 5
"""Stopped and crashed instances kept per deployment, so `roost info` can say why."""


class Pool:
    def __init__(self, spec: DeploymentSpec) -> None:
        self.spec = spec
        self.instances: dict[str, Instance] = {}
        self.finished: deque[InstanceInfo] = deque(maxlen=FINISHED_KEPT)
        self.last_request_at: float | None = None
        self.retiring = False
        self.held = False  # drained on purpose: keep no floor until something asks for an instance
        # the zygote
        self.zygote: Zygote | None = None
        self.old_zygotes: list[Zygote] = []  # of an earlier spec, until their instances are gone
        self.zygote_streak = 0
        self.zygote_timer: asyncio.TimerHandle | None = None  # a replacement after a death
        self.preload_refused = False  # the app runs threads at import: never fork it
        # crashes
        self.streak = 0
        self.backoff_until = 0.0  # monotonic
        self.restart_timer: asyncio.TimerHandle | None = None
        self.last_failure = ""
        self.failing_to_start = False  # the last crash came before the instance was ready
        self.crashes = 0  # in all, since the pool was made (a process type's restarts)

    @property
    def deployment(self) -> str:
        return self.spec.deployment

    def wants_zygote(self) -> bool:
        config = self.spec.config
        return bool(config.entrypoint) and not config.command and config.preload and not self.preload_refused

    def live(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.is_live()]

    def ready(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.is_ready()]

    def count(self, state: InstanceState) -> int:
        return sum(1 for i in self.instances.values() if i.state is state)

    def floor(self) -> int:
        return 0 if self.held or self.retiring else floor_count(self.spec.config)

    def free_slots(self) -> int:
        concurrency = self.spec.config.scale.concurrency
        return sum(max(0, concurrency - i.in_flight) for i in self.ready())

    def stats(self) -> DeploymentStats:
        return DeploymentStats(
            deployment=self.spec.deployment,
            ready=self.count(InstanceState.READY),
            starting=self.count(InstanceState.STARTING),
            draining=self.count(InstanceState.DRAINING),
            in_flight=sum(i.in_flight for i in self.instances.values()),
            capacity=self.free_slots(),
            last_request_at=self.last_request_at,
            crash_streak=self.streak,
            crash_looping=is_crash_looping(self.streak),
            last_failure=self.last_failure,
            last_start_at=max((i.started_at for i in self.live()), default=None),
        )

    def cancel_timers(self) -> None:
        for timer in (self.restart_timer, self.zygote_timer):
            if timer is not None:
                timer.cancel()
        self.restart_timer = self.zygote_timer = None
        for instance in self.instances.values():
            instance.cancel_idle_timer()


def running_pool(pools: Mapping[DeploymentId, Pool], deployment: DeploymentId, closing: bool) -> Pool:
    """The pool of a deployment that may run instances; raises Unavailable for one that is
    unknown, being retired, or when the runtime is closing."""
    pool = pools.get(deployment)
    if pool is None or pool.retiring or closing:
        raise Unavailable(f"deployment {deployment} is not running", hint="deploy it first (roost start APP)")
    return pool
