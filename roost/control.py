"""Use cases: the one place where a change spans the store and the runtime.

Each use case writes the store first, then announces the change to whoever
listens (the daemon wires the router and the supervisor). Never parses HTTP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from roost.config import build_config, validate
from roost.errors import UsageError
from roost.model import (
    APP_NAME_RULE,
    App,
    AppName,
    Deployment,
    Event,
    Mode,
    TrafficEntry,
    is_valid_app_name,
)
from roost.store import Store

Listener = Callable[[AppName], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AppDetails:
    """Everything `roost info` shows about one app."""

    app: App
    deployments: list[Deployment]
    traffic: list[TrafficEntry]
    events: list[Event] = field(default_factory=list)


def check_app_name(name: str) -> AppName:
    if not is_valid_app_name(name):
        raise UsageError(f"'{name}' is not a valid app name", hint=f"an app name is {APP_NAME_RULE}")
    return AppName(name)


class Control:
    """The use cases of Roost, over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> None:
        """Call `listener(app)` after every change to an app's desired state."""
        self._listeners.append(listener)

    async def _announce(self, app: AppName) -> None:
        for listener in self._listeners:
            await listener(app)

    async def create_app(self, name: str, mode: str | None = None, settings: dict[str, object] | None = None) -> App:
        """Create an app from raw settings (as in roost.toml). Raises Conflict, UsageError, ConfigError."""
        app_name = check_app_name(name)
        raw = dict(settings or {})
        if mode is not None:
            raw["mode"] = mode
        config = build_config(validate(raw, "app settings"), "app settings")
        created = await self.store.create_app(app_name, Mode(config.mode), config)
        await self._announce(app_name)
        return created

    async def list_apps(self) -> list[App]:
        return await self.store.list_apps()

    async def app_details(self, name: str, events: int = 20) -> AppDetails:
        app = await self.store.get_app(name)
        return AppDetails(
            app=app,
            deployments=await self.store.list_deployments(name),
            traffic=await self.store.get_traffic(name),
            events=await self.store.list_events(name, limit=events),
        )

    async def remove_app(self, name: str) -> None:
        await self.store.delete_app(name)
        await self._announce(AppName(name))

    async def events(self, app: str | None, after: int = 0, limit: int = 50) -> list[Event]:
        if app is not None:
            await self.store.get_app(app)
        return await self.store.list_events(app, after=after, limit=limit)
