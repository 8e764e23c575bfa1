"""Bringing the runtime in line with the store: reconcile, start, stop, restart, recover.

The store says what should run; this module tells the runtime, in an order
that never leaves an app without a ready instance during a promote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace

from roost.builder import Builder
from roost.config import merge, validate, with_overrides
from roost.control.core import Announcer
from roost.control.processes import without_processes
from roost.control.secrets import Secrets
from roost.cron import CronRunner, JobState
from roost.errors import LimitExceeded, NotFound, RoostError
from roost.model import (
    App,
    AppConfig,
    AppName,
    CronJob,
    Deployment,
    DeploymentId,
    DeploymentStatus,
    DesiredState,
    Mode,
    Quota,
    Traffic,
)
from roost.quotas import cap_for, most_instances, say_instances
from roost.runtime.protocol import DeploymentSpec, Runtime
from roost.store import Store
from roost.tasks import TaskSet
from roost.units import format_size

log = logging.getLogger("roost.control")
TIMEOUT_HANDOVER = 30.0
"""How long a promote waits for the new production's instance before it returns. A slower start
is no failure: the hand-over finishes in the background (the runtime bounds a start itself)."""


def preview_config(config: AppConfig, keep_zygote: bool = False) -> AppConfig:
    """A deployment outside production runs on demand only, and without a zygote, unless it
    served production earlier in this run: it keeps its zygote (until the runtime evicts it
    when idle), so a rollback to it forks in milliseconds instead of paying the full import."""
    preload = config.preload and keep_zygote
    return replace(config, mode=Mode.FUNCTION, preload=preload, scale=replace(config.scale, min=0))


def within_quotas(config: AppConfig, quotas: Iterable[Quota], app: str) -> AppConfig:
    """Production settings no larger than the quotas let `app` run alone: the runtime never
    starts more for waiting requests, and a `min` above the quota is cut down to it."""
    most = most_instances(quotas, app, config.limits.memory)
    if most is None or (config.scale.max <= most and config.scale.min <= most):
        return config
    return replace(
        config, scale=replace(config.scale, max=min(config.scale.max, most), min=min(config.scale.min, most))
    )


def check_min_within_quotas(config: AppConfig, quotas: Iterable[Quota], app: str) -> None:
    """Refuse a `roost scale --min` the quotas could never let run. Raises LimitExceeded."""
    cap = cap_for(quotas, app, config.limits.memory, {})
    if cap is not None and config.scale.min > cap.instances:
        raise LimitExceeded(
            f'quota "{cap.quota.pattern}" allows {say_instances(cap.instances)} of {app} '
            f"({format_size(config.limits.memory)} each); min {config.scale.min} is above it",
            hint=f"lower --min, or raise the quota: roost quota set '{cap.quota.pattern}' --instances N --memory SIZE",
        )


class LifecycleUseCases:
    """What runs follows the store: the one `reconcile`, app start/stop/restart, scale, cron, recovery."""

    def __init__(
        self, store: Store, builder: Builder, runtime: Runtime, secrets: Secrets, announcer: Announcer, tasks: TaskSet
    ) -> None:
        self.store = store
        self.builder = builder
        self.runtime = runtime
        self.secrets = secrets
        self.announcer = announcer
        self.tasks = tasks
        self.cron: CronRunner | None = None
        self._registered: dict[DeploymentId, DeploymentSpec] = {}
        self._production: dict[DeploymentId, bool] = {}  # served production in this run -> serves it now

    def _spec(
        self,
        app: App,
        deployment: Deployment,
        production: bool,
        env: dict[str, str],
        quotas: tuple[Quota, ...] = (),
        top: bool = False,
    ) -> DeploymentSpec:
        """`top`: the deployment is production itself (not a canary beside it): its process types run."""
        config = with_overrides(deployment.config, app.overrides)
        if production:
            config = within_quotas(config, quotas, app.name)
        else:
            config = preview_config(config, keep_zygote=deployment.id in self._production)
        if not top:
            config = without_processes(config)
        return DeploymentSpec.of(deployment, env, config)

    async def reconcile(self, app: AppName) -> None:
        """Route first, then start what production needs, then retire what it no longer does."""
        await self.announcer.announce(app)
        await self.refresh_cron()
        try:
            record = await self.store.get_app(app)
        except NotFound:
            return
        deployments = [d for d in await self.store.list_deployments(app) if d.status is DeploymentStatus.READY]
        if record.desired is DesiredState.STOPPED:
            for deployment in deployments:
                self._production.pop(deployment.id, None)
                if self._registered.pop(deployment.id, None) is not None:
                    await self.runtime.retire(deployment.id)
            return
        weights = {t.deployment: t.weight for t in await self.store.get_traffic(app)}
        quotas = tuple(await self.store.quotas.list_quotas())
        await self._converge(record, deployments, weights, await self.secrets.secrets_of(app), quotas)

    async def _converge(
        self,
        record: App,
        deployments: list[Deployment],
        weights: Mapping[DeploymentId, int],
        secrets: dict[str, str],
        quotas: tuple[Quota, ...] = (),
    ) -> None:
        """Production first; once it has a ready instance, what left production drains."""
        production = [d for d in deployments if weights.get(d.id, 0) > 0]
        leaving = [d for d in deployments if weights.get(d.id, 0) == 0 and self._production.get(d.id)]
        top = Traffic.of_pairs(weights.items()).production
        for deployment in production:
            self._production[deployment.id] = True
            env = {**deployment.config.env, **secrets}
            await self._register(self._spec(record, deployment, True, env, quotas, top=deployment.id == top))
        handed_over = asyncio.ensure_future(self._hand_over(production, leaving)) if leaving else None
        try:
            if handed_over is not None:  # a slower start finishes the hand-over in the background
                await asyncio.wait([handed_over], timeout=TIMEOUT_HANDOVER)
            for deployment in leaving:
                self._production[deployment.id] = False  # out of production: a preview that keeps its zygote
            for deployment in deployments:
                if weights.get(deployment.id, 0) == 0:
                    await self._register(self._spec(record, deployment, False, {**deployment.config.env, **secrets}))
        finally:
            if handed_over is not None:
                drain = self._drain_when_handed_over(handed_over, leaving, production)
                self.tasks.start(drain, name=f"hand-over {record.name}")

    async def set_scale(self, app: str, changes: Mapping[str, object]) -> App:
        """Change scale settings on top of every deployment's roost.toml (they survive pushes).

        Raises ConfigError for a bad value or a result that breaks a rule (min above max)."""
        record = await self.store.get_app(app)
        if not changes:
            return record
        layer = validate({"scale": dict(changes)}, "roost scale")
        overrides = merge(record.overrides, layer)
        quotas = await self.store.quotas.list_quotas()
        for deployment in await self.store.list_deployments(app):
            if deployment.status is DeploymentStatus.READY:
                check_min_within_quotas(with_overrides(deployment.config, overrides), quotas, app)  # or ConfigError
        updated = await self.store.set_overrides(app, overrides)
        said = ", ".join(
            f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
            for key, value in layer["scale"].items()
        )
        await self.store.add_event(app, "scale.settings", f"scale settings changed: {said}", layer["scale"])
        await self.reconcile(record.name)
        return updated

    async def production_crons(self) -> dict[str, tuple[CronJob, ...]]:
        """Each running app's cron jobs, from its production deployment's settings."""
        jobs: dict[str, tuple[CronJob, ...]] = {}
        traffic = await self.store.all_traffic()
        for app in await self.store.list_apps():
            production = Traffic.of(traffic.get(app.name, [])).production
            if app.desired is DesiredState.STOPPED or production is None:
                continue
            deployment = await self.store.get_deployment(app.name, production)
            if deployment.config.crons:
                jobs[app.name] = deployment.config.crons
        return jobs

    async def refresh_cron(self) -> None:
        if self.cron is not None:
            self.cron.set_jobs(await self.production_crons())

    async def cron_status(self, app: str) -> list[JobState]:
        await self.store.get_app(app)
        return self.cron.status(app) if self.cron is not None else []

    async def _register(self, spec: DeploymentSpec) -> None:
        if self._registered.get(spec.deployment) == spec:
            return
        self._registered[spec.deployment] = spec
        await self.runtime.deploy(spec)

    async def retire(self, deployment: DeploymentId) -> None:
        """Take a deployment off the runtime, if it was registered there (retention prunes it)."""
        if self._registered.pop(deployment, None) is not None:
            await self.runtime.retire(deployment)

    async def _hand_over(self, production: list[Deployment], leaving: list[Deployment]) -> bool:
        """Before old instances drain, make sure the new production has one ready. False when it
        could not get one: the old instances are then left to idle out rather than drained, and
        only then is a warning due."""
        if not any(self.runtime.stats(d.id).ready + self.runtime.stats(d.id).starting for d in leaving):
            return True  # nothing runs that could drain
        failures = {d.id: why for d in production if (why := await self._ready_one(d.id))}
        for deployment, why in failures.items():
            old = ", ".join(d.id for d in leaving)
            log.warning("hand-over to %s failed: %s; %s keep(s) serving until idle", deployment, why, old)
        return not failures

    async def _ready_one(self, deployment: DeploymentId) -> str:
        """ "" once `deployment` has a ready instance (started now if need be), else why not. A start
        that fails while another one (a request's) became ready is no failure of the hand-over,
        nor is one of a deployment that was retired meanwhile (the app stopped)."""
        if self.runtime.stats(deployment).ready:
            return ""
        try:
            await self.runtime.start_instance(deployment)
        except RoostError as exc:
            if self.runtime.stats(deployment).ready or deployment not in self._registered:
                return ""
            return str(exc)
        return ""

    async def _drain_when_handed_over(
        self, handed_over: asyncio.Future[bool], leaving: list[Deployment], production: list[Deployment]
    ) -> None:
        """Once the hand-over worked, what left production drains (in parallel)."""
        if not await handed_over:
            return
        await asyncio.gather(*(self._drain_leaving(d, production) for d in leaving if d.id in self._registered))

    async def _drain_leaving(self, deployment: Deployment, production: list[Deployment]) -> None:
        """The new production has a ready instance: the old deployment's instances drain now
        (in-flight requests finish within the grace) instead of idling on for `idle_timeout`.
        Its zygote stays, for a fast rollback."""
        if self._production.get(deployment.id):
            return  # promoted again (a quick rollback) before this ran: its instances serve production
        names = ", ".join(d.id for d in production) or "no deployment"
        with contextlib.suppress(RoostError):  # retired meanwhile (app stopped or removed): nothing to drain
            await self.runtime.scale_to(deployment.id, 0, f"left production ({names} took over)")

    async def stop_app(self, app: str) -> None:
        """Stop every instance; the app answers 503 until started."""
        await self.store.update_app(app, desired=DesiredState.STOPPED)
        await self.store.add_event(app, "app.stopped", f"app {app} stopped")
        await self.reconcile(AppName(app))

    async def start_app(self, app: str) -> None:
        await self.store.update_app(app, desired=DesiredState.RUNNING)
        await self.store.add_event(app, "app.started", f"app {app} started")
        await self.reconcile(AppName(app))

    async def restart_app(self, app: str) -> None:
        """Rolling restart of production: new instances first, then the old drain."""
        record = await self.store.get_app(app)
        if record.desired is DesiredState.STOPPED:
            await self.start_app(app)
            return
        traffic = await self.store.get_traffic(app)
        await self.store.add_event(app, "app.restarted", f"app {app} restarting")
        for entry in traffic:
            if entry.deployment in self._registered:
                await self.runtime.restart(entry.deployment)

    async def recover(self) -> None:
        """After a daemon start: fail interrupted builds, end what the last run left, bring every app back."""
        failed = await self.store.fail_building_deployments("the daemon stopped during the build; push again")
        for deployment in failed:
            log.warning(
                "deployment %s of %s was building when the daemon stopped: marked failed",
                *(deployment.id, deployment.app),
            )
        leftovers = await self.builder.remove_leftovers()  # before any build can start
        if leftovers:
            log.warning("removed %d half-built folder(s) of interrupted builds", len(leftovers))
        ended = await self.runtime.recover(await self.store.instances.live_instances())
        if ended:
            log.warning("ended %d leftover(s) of a previous run: %s", len(ended), ", ".join(ended))
        await self.store.instances.close_live_instances("the daemon restarted")
        for app in await self.store.list_apps():
            with contextlib.suppress(RoostError):
                await self.reconcile(app.name)
