"""How the local runtime tells the world: events for people (the daemon writes them to the
store) and listener calls for the edge. Decides nothing; called on the event loop only."""

from __future__ import annotations

from roost.model import AppName, DeploymentId
from roost.runtime.instance import Instance
from roost.runtime.protocol import EventSink, RuntimeListener


class Notifier:
    """The event sink and the subscribed listeners, told in the order they subscribed."""

    def __init__(self, events: EventSink) -> None:
        self._events = events
        self._listeners: list[RuntimeListener] = []

    def subscribe(self, listener: RuntimeListener) -> None:
        self._listeners.append(listener)

    def event(self, app: AppName, kind: str, message: str, **data: object) -> None:
        self._events(app, kind, message, data)

    def changed(self, instance: Instance) -> None:
        info = instance.info()
        for listener in self._listeners:
            listener.instance_changed(info)

    def capacity_changed(self, deployment: DeploymentId) -> None:
        for listener in self._listeners:
            listener.capacity_changed(deployment)

    def start_failed(self, deployment: DeploymentId, reason: str, retry_after: int | None = None) -> None:
        for listener in self._listeners:
            listener.start_failed(deployment, reason, retry_after)
