"""The supervisor's foundation: what it owns (pools, instances, background
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
from pathlib import Path
from typing import Any

from roost.applog import LogBook
from roost.model import AppName, DeploymentId
from roost.runtime.instance import Instance
from roost.runtime.pool import Pool
from roost.runtime.protocol import EventSink, RuntimeListener
from roost.runtime.sandbox import Cgroup, Sandbox
from roost.runtime.tuning import RuntimeSettings

log = logging.getLogger("roost.runtime")


class Notifier:
    def __init__(
        self, home: Path, logs: LogBook, events: EventSink, settings: RuntimeSettings, sandbox: Sandbox
    ) -> None:
        self.home = home
        self.settings = settings
        self.sandbox = sandbox
        self._logs = logs
        self._events = events
        self._listeners: list[RuntimeListener] = []
        self._pools: dict[DeploymentId, Pool] = {}
        self._instances: dict[str, tuple[Pool, Instance]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
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
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("runtime task %s failed", task.get_name(), exc_info=task.exception())

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
