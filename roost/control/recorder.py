"""The runtime's reports, written into the store as events and instance rows, in the order
they happened (the runtime calls on the loop; the writes run as tasks the daemon flushes);
and the events of the autoscaler and the cron runner, worded here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from roost.autoscale import Decision
from roost.model import AppName, DeploymentId
from roost.runtime.protocol import InstanceInfo
from roost.store import Store
from roost.tasks import TaskSet

log = logging.getLogger("roost.control")


class Recorder:
    """Writes what the runtime, the autoscaler and cron report into the store, in the order it
    happened. `apps_of` names each deployment's app (the daemon refreshes it with the routes)."""

    def __init__(self, store: Store, apps_of: Callable[[], Mapping[DeploymentId, str]]) -> None:
        self._store = store
        self._apps_of = apps_of
        self._tasks = TaskSet(log, "recording runtime state")

    def __call__(self, app: AppName | None, kind: str, message: str, data: Mapping[str, object]) -> None:
        """The runtime's events; a cluster's `node.*` ones have no app."""
        self._tasks.start(self._store.add_event(app, kind, message, dict(data)), name=f"event {kind}")

    def instance_changed(self, info: InstanceInfo) -> None:
        self._tasks.start(self._store.instances.record_instance(info.record()), name=f"instance {info.id}")

    def capacity_changed(self, deployment: DeploymentId) -> None:
        return None

    def start_failed(self, deployment: DeploymentId, reason: str, retry_after: int | None = None) -> None:
        return None

    async def scaled(self, deployment: DeploymentId, current: int, desired: int, reason: str) -> None:
        """The autoscaler changed a deployment's count."""
        await self._store.add_event(
            self._apps_of().get(deployment),
            "scale",
            f"{deployment}: {current} -> {desired} instances ({reason})",
            {"deployment": deployment, "from": current, "to": desired, "reason": reason},
        )

    async def quota_reached(self, deployment: DeploymentId, decision: Decision) -> None:
        """A quota capped what the autoscaler wanted (told once per episode)."""
        if decision.cap is None:
            return
        cap = decision.cap
        data = {
            "deployment": deployment,
            "quota": cap.quota.pattern,
            "allowed": cap.instances,
            "wanted": decision.wanted,
        }
        await self._store.add_event(self._apps_of().get(deployment), "quota.reached", decision.reason, data)

    async def event(self, app: str, kind: str, message: str, data: dict[str, object]) -> None:
        """An event as the cron runner words it."""
        await self._store.add_event(app, kind, message, data)

    async def flush(self) -> None:
        await self._tasks.wait_all()
