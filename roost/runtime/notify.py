"""The supervisor's foundation: its settings, what it owns (pools, instances, background
tasks) and how it tells the world (events for people, listener calls for the edge).

Layers build on it, one concern each: `zygotes` (the fork servers), `keeper`
(instances: spawn, ready, drain, stop, crash, back off) and `supervisor` (the
Runtime protocol itself).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roost.applog import LogBook
from roost.model import AppName, DeploymentId
from roost.runtime.backoff import Backoff
from roost.runtime.instance import Instance
from roost.runtime.pool import Pool
from roost.runtime.protocol import EventSink, RuntimeListener
from roost.runtime.sandbox import Cgroup, Sandbox
from roost.tasks import TaskSet

log = logging.getLogger("roost.runtime")


@dataclass(frozen=True, slots=True)
class Settings:
    grace_drain: float = 10.0  # in-flight requests may finish within this, then TERM
    grace_kill: float = 5.0  # after TERM, then KILL
    zygote_idle: float = 1800.0  # a zygote without a fork this long (and no live instance) is evicted
    idle_check_interval: float = 1.0  # the sweep: zygote eviction, crash-loop expiry
    timeout_start: float = 60.0  # a fresh instance or a zygote must be ready within this
    backoff: Backoff = field(default_factory=Backoff)
    memory_budget: int = 0  # bytes of instance memory limits the host allows in all; 0: no budget


class Notifier:
    def __init__(self, home: Path, logs: LogBook, events: EventSink, settings: Settings, sandbox: Sandbox) -> None:
        self.home = home
        self.settings = settings
        self.sandbox = sandbox
        self._logs = logs
        self._events = events
        self._listeners: list[RuntimeListener] = []
        self._pools: dict[DeploymentId, Pool] = {}
        self._instances: dict[str, tuple[Pool, Instance]] = {}
        self._tasks = TaskSet(log, "runtime task")
        self._closing = False

    def subscribe(self, listener: RuntimeListener) -> None:
        self._listeners.append(listener)

    # -- telling -------------------------------------------------------------------------------------------------------

    def _event(self, app: AppName, kind: str, message: str, **data: object) -> None:
        self._events(app, kind, message, data)

    def _changed(self, instance: Instance) -> None:
        info = instance.info()
        for listener in self._listeners:
            listener.instance_changed(info)

    def _capacity_changed(self, deployment: DeploymentId) -> None:
        for listener in self._listeners:
            listener.capacity_changed(deployment)

    def _start_failed(self, deployment: DeploymentId, reason: str, retry_after: int | None = None) -> None:
        for listener in self._listeners:
            listener.start_failed(deployment, reason, retry_after)

    # -- owning --------------------------------------------------------------------------------------------------------

    def _spawn_task(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        """A background task whose handle is kept until it ends; close() cancels what is left."""
        self._tasks.spawn(work, name=name)

    def _tmpdir(self, name: str) -> Path:
        return self.home / "run" / "tmp" / name

    def _remove_tmpdir(self, path: Path) -> None:
        """Wipe an instance's TMPDIR in a thread (it may hold many files)."""
        self._spawn_task(asyncio.to_thread(shutil.rmtree, path, True), name=f"rmtree {path.name}")

    def _remove_cgroup(self, group: Cgroup | None) -> None:
        """Kill whatever is left in the group (a grandchild that left the process group) and
        remove it, in a thread: it waits for the processes to die."""
        if group is not None:
            self._spawn_task(asyncio.to_thread(group.remove), name=f"remove cgroup {group.name}")
