"""One instance's state machine and bookkeeping: state, slots in use, its process handle.

States move only along `TRANSITIONS` (starting -> ready -> draining -> stopped,
or -> crashed); `move` refuses anything else. This module never spawns or
signals a process: the supervisor does, and records what happened here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from roost.model import InstanceId, InstanceState
from roost.runtime.output import Output
from roost.runtime.ports import LOOPBACK
from roost.runtime.process import Child
from roost.runtime.protocol import DeploymentSpec, InstanceInfo, StartKind
from roost.runtime.sandbox import Cgroup, CpuSamples

TRANSITIONS: dict[InstanceState, frozenset[InstanceState]] = {
    InstanceState.STARTING: frozenset({InstanceState.READY, InstanceState.DRAINING, InstanceState.CRASHED}),
    InstanceState.READY: frozenset({InstanceState.DRAINING, InstanceState.CRASHED}),
    # A draining instance that ends is stopped, whatever its exit status: we asked it to go.
    InstanceState.DRAINING: frozenset({InstanceState.STOPPED}),
    InstanceState.STOPPED: frozenset(),
    InstanceState.CRASHED: frozenset(),
}
LIVE = frozenset({InstanceState.STARTING, InstanceState.READY})


def can_move(current: InstanceState, target: InstanceState) -> bool:
    return target in TRANSITIONS[current]


class Instance:
    """Mutable, owned by the event loop; crosses no module boundary (`info()` does)."""

    def __init__(self, spec: DeploymentSpec, instance: InstanceId, tmpdir: Path, output: Output, restarts: int) -> None:
        self.id = instance
        self.spec = spec
        self.tmpdir = tmpdir
        self.output = output
        self.restarts = restarts
        self.state = InstanceState.STARTING
        self.reason = ""
        self.host = LOOPBACK
        self.port = 0
        self.start_kind = StartKind.FRESH  # what a request waiting for it waited for: FORK only from a ready zygote
        self.forked = False  # a child of a zygote (even one that had just imported the app)
        self.started_at = time.time()
        self.spawned_at = time.monotonic()
        self.ready_at: float | None = None
        self.last_used = time.monotonic()
        self.in_flight = 0
        self.child: Child | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.launching: asyncio.Task[None] | None = None
        self.stop_reason = ""
        self.spawned = asyncio.Event()  # a process exists (or never will)
        self.idle = asyncio.Event()  # no request in flight
        self.idle.set()
        self.finished = asyncio.Event()  # stopped or crashed, process reaped
        self.ready_waiters: list[asyncio.Future[InstanceInfo | str]] = []
        self.on_spawned: Callable[[], None] | None = None
        self.cgroup: Cgroup | None = None  # its own, when the host has cgroups
        self.usage = CpuSamples()  # CPU-time samples, for the budget
        self.memory_seen = 0  # RSS in bytes when polling (no cgroups) found it over the limit and killed it

    def mark_spawned(self) -> None:
        """Its process exists now (pid known), ready or not."""
        self.spawned.set()
        if self.on_spawned is not None:
            self.on_spawned()

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    def info(self) -> InstanceInfo:
        return InstanceInfo(
            id=self.id,
            app=self.spec.app,
            deployment=self.spec.deployment,
            state=self.state,
            host=self.host,
            port=self.port,
            pid=self.pid,
            started_at=self.started_at,
            start_kind=self.start_kind,
            in_flight=self.in_flight,
            restarts=self.restarts,
            reason=self.reason,
            process=self.spec.process.name if self.spec.process is not None else "",
        )

    def move(self, target: InstanceState, reason: str = "") -> None:
        if not can_move(self.state, target):
            raise RuntimeError(f"instance {self.id}: no edge {self.state} -> {target}")
        self.state = target
        if reason:
            self.reason = reason

    def is_ready(self) -> bool:
        return self.state is InstanceState.READY

    def is_live(self) -> bool:
        return self.state in LIVE

    def has_free_slot(self) -> bool:
        return self.is_ready() and self.in_flight < self.spec.config.scale.concurrency

    def healthy_seconds(self, now: float) -> float:
        return 0.0 if self.ready_at is None else now - self.ready_at

    def take(self) -> None:
        """One more request in flight (synchronous, with the slot handed out). Going busy
        marks the output: what it wrote while idle or for earlier requests is an older episode."""
        if self.in_flight == 0:
            self.output.mark()
        self.in_flight += 1
        self.idle.clear()
        self.cancel_idle_timer()

    def give_back(self, now: float) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self.last_used = now
        if self.in_flight == 0:
            self.idle.set()

    def cancel_idle_timer(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def resolve_waiters(self, outcome: InstanceInfo | str) -> None:
        """Tell every `start_instance` caller: the info when ready, the reason when it failed."""
        for waiter in self.ready_waiters:
            if not waiter.done():
                waiter.set_result(outcome)
        self.ready_waiters.clear()
