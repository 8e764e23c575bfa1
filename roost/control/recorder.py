"""The runtime's reports, written into the store as events and instance rows, in the order
they happened (the runtime calls on the loop; the writes run as tasks the daemon flushes)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from roost.model import AppName, DeploymentId
from roost.runtime.protocol import InstanceInfo
from roost.store import Store
from roost.tasks import TaskSet

log = logging.getLogger("roost.control")


class Recorder:
    """Writes what the runtime reports into the store, in the order it happened."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._tasks = TaskSet(log, "recording runtime state")

    def __call__(self, app: AppName, kind: str, message: str, data: Mapping[str, object]) -> None:
        self._tasks.start(self._store.add_event(app, kind, message, dict(data)), name=f"event {kind}")

    def instance_changed(self, info: InstanceInfo) -> None:
        self._tasks.start(self._store.instances.record_instance(info.record()), name=f"instance {info.id}")

    def capacity_changed(self, deployment: DeploymentId) -> None:
        return None

    def start_failed(self, deployment: DeploymentId, reason: str, retry_after: int | None = None) -> None:
        return None

    async def flush(self) -> None:
        await self._tasks.wait_all()
