"""What every use case shares (announcing changes, URLs, app names) and the app use cases."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from roost.applog import LogBook, LogLine
from roost.config import build_config, setting_sources, validate, with_overrides
from roost.control.isolation import BUILD_ISOLATION
from roost.control.quotas import QuotaState, QuotaUseCases
from roost.control.usage import LIVE, Usage, measure
from roost.errors import UsageError
from roost.model import (
    APP_NAME_RULE,
    App,
    AppConfig,
    AppName,
    Deployment,
    DeploymentId,
    Event,
    InstanceId,
    Mode,
    Traffic,
    TrafficEntry,
    is_valid_app_name,
)
from roost.runtime.protocol import InstanceInfo, Isolation, ProcessStats, Runtime
from roost.store import Store

LIMIT_BUILD_ISOLATION = 200  # build.isolation events looked at: a few steps of each kept deployment
Listener = Callable[[AppName | None], Awaitable[None]]  # None: no app's (the admin API's certificate)


@dataclass(frozen=True, slots=True)
class Urls:
    """How the edge is reached from outside, for the URLs Roost prints."""

    domain: str
    port: int
    scheme: str = "http"

    def _base(self, host: str) -> str:
        default = (self.scheme, self.port) in (("http", 80), ("https", 443))
        return f"{self.scheme}://{host}{'' if default else f':{self.port}'}/"

    def production(self, app: str) -> str:
        return self._base(f"{app}.{self.domain}")

    def preview(self, app: str, deployment: str) -> str:
        return self._base(f"{deployment}--{app}.{self.domain}")


@dataclass(frozen=True, slots=True)
class AppDetails:
    """Everything `roost info` shows about one app."""

    app: App
    deployments: list[Deployment]
    traffic: list[TrafficEntry]
    events: list[Event] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    instances: list[InstanceInfo] = field(default_factory=list)
    usage: dict[int, Usage] = field(default_factory=dict)  # by pid
    isolation: dict[InstanceId, Isolation] = field(default_factory=dict)  # by instance id, read back from its process
    build_isolation: list[Event] = field(default_factory=list)  # `build.isolation` of the listed deployments
    settings: AppConfig | None = None  # in force for production, `roost scale` included
    sources: dict[str, str] = field(default_factory=dict)  # "scale.min" -> "roost scale" | "roost.toml" | "default"
    quotas: list[QuotaState] = field(default_factory=list)  # the quotas covering the app, and how full they are
    processes: list[ProcessStats] = field(default_factory=list)  # production's process types: count, state, restarts


def check_app_name(name: str) -> AppName:
    if not is_valid_app_name(name):
        raise UsageError(f"'{name}' is not a valid app name", hint=f"an app name is {APP_NAME_RULE}")
    return AppName(name)


class Announcer:
    """Tells the listeners (the daemon's router refresh) that an app's desired state changed."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> None:
        """Call `listener(app)` after every change to an app's desired state."""
        self._listeners.append(listener)

    async def announce(self, app: AppName | None) -> None:
        for listener in self._listeners:
            await listener(app)


class AppUseCases:
    """Apps, their domains, events and logs, and what `roost info` shows of one."""

    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        logs: LogBook,
        announcer: Announcer,
        quotas: QuotaUseCases,
        deployments_root: Path,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.logs = logs
        self.announcer = announcer
        self.quotas = quotas
        self.deployments_root = deployments_root

    async def create_app(self, name: str, mode: str | None = None, settings: dict[str, object] | None = None) -> App:
        """Create an app from raw settings (as in roost.toml). Raises Conflict, UsageError, ConfigError."""
        app_name = check_app_name(name)
        raw = dict(settings or {})
        if mode is not None:
            raw["mode"] = mode
        config = build_config(validate(raw, "app settings"), "app settings")
        created = await self.store.create_app(app_name, Mode(config.mode), config)
        await self.announcer.announce(app_name)
        return created

    async def list_apps(self) -> list[App]:
        return await self.store.list_apps()

    async def app_details(self, name: str, events: int = 20) -> AppDetails:
        app = await self.store.get_app(name)
        instances = [i for i in self.runtime.instances() if i.app == name]
        deployments = await self.store.list_deployments(name)
        traffic = await self.store.get_traffic(name)
        top = Traffic.of(traffic).production
        production = next((d for d in deployments if d.id == top), None)
        settings = with_overrides(production.config if production else app.config, app.overrides)
        return AppDetails(
            app=app,
            settings=settings,
            sources=setting_sources(settings, app.overrides, production.sources if production else {}),
            deployments=deployments,
            traffic=traffic,
            events=await self.store.list_events(name, limit=events),
            domains=sorted(await self.store.domains.list_domains(name)),
            instances=instances,
            usage=await self.usage(instances),
            quotas=await self.quotas.quota_states(name),
            isolation=await self.isolation(instances),
            build_isolation=await self.build_isolation(name, {d.id for d in deployments}),
            processes=self.runtime.process_stats(top) if top is not None else [],
        )

    async def usage(self, instances: Iterable[InstanceInfo]) -> dict[int, Usage]:
        """Memory and CPU now of each live instance, by pid (read in a thread)."""
        pids = [i.pid for i in instances if i.pid is not None and i.state in LIVE]
        return await asyncio.to_thread(measure, pids) if pids else {}

    async def isolation(self, instances: Iterable[InstanceInfo]) -> dict[InstanceId, Isolation]:
        """What each live instance really got, read back from its process by the runtime."""
        found: dict[InstanceId, Isolation] = {}
        for deployment in sorted({i.deployment for i in instances if i.state in LIVE}):
            found.update(await self.runtime.isolation(deployment))
        return found

    async def build_isolation(self, app: str, deployments: set[DeploymentId]) -> list[Event]:
        """The newest read-back of each build step of `deployments` (one event per step)."""
        events = await self.store.list_events_of_kind(app, BUILD_ISOLATION, limit=LIMIT_BUILD_ISOLATION)
        latest = {(e.data.get("deployment"), e.data.get("step")): e for e in events}
        return [e for e in latest.values() if e.data.get("deployment") in deployments]

    async def remove_app(self, name: str) -> None:
        """Forget the app: stop its instances, then delete its rows, files and logs."""
        app = await self.store.get_app(name)
        deployments = await self.store.list_deployments(name)
        await self.store.delete_app(name)
        await self.announcer.announce(app.name)
        for deployment in deployments:
            await self.runtime.retire(deployment.id)
        await asyncio.to_thread(shutil.rmtree, self.deployments_root / name, True)
        self.logs.remove(name)

    async def events(self, app: str | None, after: int = 0, limit: int = 50) -> list[Event]:
        if app is not None:
            await self.store.get_app(app)
        return await self.store.list_events(app, after=after, limit=limit)

    async def read_logs(self, app: str, since: float | None, deployment: str | None) -> list[LogLine]:
        await self.store.get_app(app)
        return await asyncio.to_thread(self.logs.read, app, since, deployment)


# DNS labels of letters, digits and inner '-', a trailing dot allowed; the admin API's schema
# carries the same pattern and length (roost/api/params.py).
HOST_PATTERN = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?$"
HOST_MAX_LENGTH = 253
_HOST_RE = re.compile(HOST_PATTERN)


def check_host(host: str) -> str:
    """A custom domain's name, lower case without the trailing dot. Raises UsageError."""
    clean = host.strip()
    if len(clean) > HOST_MAX_LENGTH or _HOST_RE.fullmatch(clean) is None:
        raise UsageError(f"'{host}' is not a valid host name", hint="give a name like app.example.com")
    return clean.lower().rstrip(".")


__all__ = ["Announcer", "AppDetails", "AppUseCases", "DeploymentId", "Urls", "check_app_name", "check_host"]
