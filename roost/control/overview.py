"""What runs, at a glance: each app's state, instance counts and memory for `roost list`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from roost.certs import state_at
from roost.control.core import AppUseCases, Urls
from roost.control.usage import LIVE
from roost.model import (
    App,
    CertState,
    Deployment,
    DeploymentStatus,
    DesiredState,
    InstanceState,
    Mode,
    Traffic,
    TrafficEntry,
)
from roost.runtime.protocol import InstanceInfo, ProcessStats, Runtime
from roost.store import Store


@dataclass(frozen=True, slots=True)
class AppSummary:
    app: App
    state: str  # running, starting, sleeping, stopped, crash-looping, building, failed, empty
    ready: int
    total: int
    production: Deployment | None
    traffic: list[TrafficEntry]
    memory: int
    url: str
    processes: list[ProcessStats] = field(default_factory=list)  # production's process types
    certificate_problems: tuple[str, ...] = ()  # a custom domain's failing or expired certificate, said loudly


def app_state(app: App, deployments: list[Deployment], live: list[InstanceInfo], crash_looping: bool) -> str:
    """One word for `roost list`."""
    if app.desired is DesiredState.STOPPED:
        return "stopped"
    if crash_looping:
        return "crash-looping"
    if any(d.status is DeploymentStatus.BUILDING for d in deployments):
        return "building"
    if any(i.state is InstanceState.READY for i in live):
        return "running"
    if any(i.state is InstanceState.STARTING for i in live):
        return "starting"  # not yet able to answer: "running" would promise too much
    if not any(d.status is DeploymentStatus.READY for d in deployments):
        return "failed" if deployments else "empty"
    return "sleeping" if app.mode is Mode.FUNCTION else "starting"


class OverviewUseCases:
    """`roost list`: one summary per app."""

    def __init__(self, store: Store, runtime: Runtime, apps: AppUseCases, urls: Urls) -> None:
        self.store = store
        self.runtime = runtime
        self.apps = apps
        self.urls = urls

    async def _certificate_problems(self) -> dict[str, list[str]]:
        """Per app, one line for each domain whose certificate failed to renew or expired."""
        now = time.time()
        found: dict[str, list[str]] = {}
        for cert in await self.store.certificates.list():
            if cert.app is None:
                continue  # the admin API's own name: `roost list` asks for it apart (control.domains.api_domain)
            state = state_at(cert, now)
            if state is CertState.EXPIRED:
                line = f"{cert.host}: certificate expired ({cert.last_error or 'not renewed'})"
            elif state is CertState.FAILING:
                line = f"{cert.host}: certificate renewal failing: {cert.last_error}"
            else:
                continue
            found.setdefault(cert.app, []).append(line)
        return found

    async def summaries(self) -> list[AppSummary]:
        apps = await self.store.list_apps()
        instances = [i for i in self.runtime.instances() if i.state in LIVE]
        usage = await self.apps.usage(instances)
        problems = await self._certificate_problems()
        found: list[AppSummary] = []
        for app in apps:
            deployments = await self.store.list_deployments(app.name)
            traffic = [t for t in await self.store.get_traffic(app.name) if t.weight > 0]
            live = [i for i in instances if i.app == app.name]
            web = [i for i in live if not i.process]
            top = Traffic.of(traffic).production
            processes = self.runtime.process_stats(top) if top is not None else []
            looping = any(self.runtime.stats(t.deployment).crash_looping for t in traffic)
            looping = looping or any(p.crash_looping for p in processes)
            production = next((d for d in deployments if d.id == top), None)
            found.append(
                AppSummary(
                    app=app,
                    state=app_state(app, deployments, web, looping),
                    ready=sum(1 for i in web if i.state is InstanceState.READY),
                    total=len(web),
                    production=production,
                    traffic=traffic,
                    memory=sum(usage[i.pid].memory for i in live if i.pid in usage),
                    url=self.urls.production(app.name),
                    processes=processes,
                    certificate_problems=tuple(problems.get(app.name, ())),
                )
            )
        return found
