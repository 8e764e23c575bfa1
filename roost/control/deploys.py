"""Deploy use cases: push, build, build check, promote (by id or branch alias), rollback, traffic split.

Writes the store first, then announces; a failed build never takes traffic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roost.builder import Builder, BuildRequest, step_line
from roost.config import build_config, validate
from roost.control.aliases import AliasUseCases, check_alias
from roost.control.buildlog import BuildLog, BuildLogs
from roost.control.core import Announcer, check_app_name
from roost.control.isolation import BuildWatch
from roost.control.lifecycle import LifecycleUseCases
from roost.control.processes import check_processes
from roost.control.retention import RetentionUseCases
from roost.control.secrets import Secrets
from roost.errors import BuildFailed, ConfigError, Conflict, NoSpace, NotFound, ReleaseFailed, UsageError
from roost.model import (
    TRAFFIC_WEIGHT_MAX,
    AppConfig,
    AppName,
    Deployment,
    DeploymentId,
    DeploymentStatus,
    TrafficEntry,
    new_deployment_id,
)
from roost.registry import Registry
from roost.runtime.protocol import DeploymentSpec, Runtime
from roost.store import Store
from roost.tasks import TaskSet
from roost.units import format_duration

log = logging.getLogger("roost.control")


@dataclass(frozen=True, slots=True)
class BuildPlace:
    """Where builds happen and how long a build check may take."""

    deployments_root: Path
    timeout_build_check: float = 30.0


class DeployUseCases:
    """Push (build, check, release), promote, rollback and traffic splits."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        builder: Builder,
        runtime: Runtime,
        buildlogs: BuildLogs,
        secrets: Secrets,
        lifecycle: LifecycleUseCases,
        retention: RetentionUseCases,
        announcer: Announcer,
        tasks: TaskSet,
        place: BuildPlace,
        aliases: AliasUseCases,
    ) -> None:
        self.store = store
        self.registry = registry
        self.builder = builder
        self.runtime = runtime
        self.buildlogs = buildlogs
        self.secrets = secrets
        self.lifecycle = lifecycle
        self.retention = retention
        self.announcer = announcer
        self.tasks = tasks
        self.place = place
        self.aliases = aliases

    async def push(
        self,
        name: str,
        digest: str,
        message: str,
        settings: Mapping[str, Any],
        promote: bool = True,
        sources: Mapping[str, str] | None = None,
        alias: str | None = None,
    ) -> Deployment:
        """Record a deployment of an uploaded archive and build it in the background.

        `sources` says where the client took each setting from (`roost info` shows it);
        the daemon cannot tell a flag from roost.toml by itself. `alias` (a branch's) moves
        to the deployment once it is ready, unless a later push holds it already; a failed
        build leaves it where it was. Creates
        the app on its first push. Raises ConfigError for bad settings and UsageError when
        the archive was not uploaded or the alias is not a valid one.
        """
        app = check_app_name(name)
        if alias is not None:
            check_alias(app, alias)
        config = build_config(validate(settings, "roost.toml"), "roost.toml")
        if not config.entrypoint and not config.command:
            raise ConfigError(
                "the app names no `entrypoint` or `command`",
                hint='set entrypoint = "module:app" or command = "..." in roost.toml (`roost init` writes one)',
            )
        if not self.registry.has(digest):
            raise UsageError(f"the archive {digest} is not in the registry", hint="run `roost push` again to upload it")
        await self._ensure_app(app, config)
        deployment = await self.store.create_deployment(app, new_deployment_id(), digest, message, config, sources)
        await self.store.add_event(
            app,
            "deploy.started",
            f"deployment {deployment.id} building",
            {"digest": digest, "deployment": deployment.id},
        )
        build_log = self.buildlogs.open(app, deployment.id)
        self.tasks.start(self._build_and_release(deployment, build_log, promote, alias), name=f"build {deployment.id}")
        return deployment

    async def _ensure_app(self, app: AppName, config: AppConfig) -> None:
        try:
            await self.store.get_app(app)
        except NotFound:
            await self.store.create_app(app, config.mode, config)
            await self.announcer.announce(
                app
            )  # its URL says "no working deployment yet" from now on, not "no such app"
        else:
            await self.store.update_app(app, mode=config.mode, config=config)

    async def _build_and_release(
        self, deployment: Deployment, build_log: BuildLog, promote: bool, alias: str | None
    ) -> None:
        started = time.monotonic()
        try:
            spec = await self._build(deployment, build_log)
            await self._check(spec, build_log)
            await self._release(spec, build_log)
        except (BuildFailed, NoSpace) as exc:  # ReleaseFailed is a BuildFailed
            await self._fail(deployment, build_log, exc.message, exc.hint, time.monotonic() - started)
            return
        except Exception as exc:
            log.exception("build of %s crashed", deployment.id)
            await self._fail(
                deployment, build_log, f"internal error: {exc}", "see the daemon's log", time.monotonic() - started
            )
            raise
        seconds = time.monotonic() - started
        await self.store.finish_deployment(
            deployment.id, DeploymentStatus.READY, seconds, code_dir=str(spec.code_dir), venv_dir=str(spec.venv_dir)
        )
        await self.store.add_event(
            deployment.app,
            "deploy.ready",
            f"deployment {deployment.id} ready in {seconds:.1f}s",
            {"deployment": deployment.id, "seconds": round(seconds, 3)},
        )
        build_log.line(f"==> deployment {deployment.id} is ready ({seconds:.1f}s)")
        try:  # the log ends once production (and its alias) serves it, so `roost push` returns when its URLs are true
            if alias is not None:
                held = await self.aliases.point(deployment.app, alias, deployment.id)
                build_log.line(
                    f"==> alias {alias} serves {deployment.id}"
                    if held.deployment == deployment.id
                    else f"==> alias {alias} stays on {held.deployment}, pushed after this one"
                )
            if promote:
                workers = [p for p in spec.config.processes if p.count > 0]
                if workers:
                    names = ", ".join(f"{p.name} ({p.count})" for p in workers)
                    build_log.line(f"==> moving production: starting {names}, then draining the old deployment's")
                await self.promote(deployment.app, deployment.id)
                build_log.line(f"==> production traffic goes to {deployment.id}")
            else:
                await self.lifecycle.reconcile(deployment.app)
        finally:
            await self.buildlogs.close(build_log)
        await self.retention.retain(deployment.app)

    async def _build(self, deployment: Deployment, build_log: BuildLog) -> DeploymentSpec:
        archive = self.registry.path(deployment.digest)
        request = BuildRequest(app=deployment.app, deployment=deployment.id, archive=archive)
        build_dir = self.place.deployments_root / deployment.app / deployment.id
        with BuildWatch(
            self.runtime, self.store, self.tasks.start, deployment.app, deployment.id, build_dir
        ).watching():
            output = await self.builder.build(request, build_log.line)
        env = await self.secrets.app_env(deployment.app, deployment.config)
        return DeploymentSpec.of(deployment, env, code_dir=output.code_dir, venv_dir=output.venv_dir)

    async def _check(self, spec: DeploymentSpec, build_log: BuildLog) -> None:
        check = spec.config.check
        what = "answer HTTP" if check is None else f"pass its health check (GET {check.path}: {check.expected()})"
        build_log.line(f"==> build check: one instance must {what} on $PORT within {self.place.timeout_build_check:g}s")
        result = await self.runtime.probe(spec, self.place.timeout_build_check)
        if not result.ok:
            for line in result.output.splitlines()[-40:]:
                build_log.line(f"    {line}")
            raise BuildFailed(f"build check failed: {result.message}", hint=_check_hint(spec))
        build_log.line(f"    {result.message}")
        build_log.line(step_line("build check", result.seconds))
        await check_processes(self.runtime, spec, build_log.line)

    async def _release(self, spec: DeploymentSpec, build_log: BuildLog) -> None:
        """The app's release command, once per deployment, before any traffic: a push of the same
        code is a new deployment and runs it again; a promote or rollback never does."""
        command = spec.config.release
        if not command:
            return
        build_log.line(f"==> release: {command} (within {format_duration(spec.config.release_timeout)})")
        result = await self.runtime.release(spec, lambda line: build_log.line(f"    {line}"))
        if not result.ok:
            raise ReleaseFailed(
                f"release command failed: {result.message}{_last_lines(result.output)}",
                hint="the deployment takes no traffic and production keeps what it had; fix the command "
                "(its output is above) and push again",
            )
        build_log.line(step_line("release", result.seconds))

    async def _fail(self, deployment: Deployment, build_log: BuildLog, message: str, hint: str, seconds: float) -> None:
        await self.store.finish_deployment(deployment.id, DeploymentStatus.FAILED, seconds, error=message)
        await self.store.add_event(
            deployment.app,
            "deploy.failed",
            f"deployment {deployment.id} failed: {message}",
            {"deployment": deployment.id, "hint": hint, "seconds": round(seconds, 3)},
        )
        build_log.line(f"error: {message}")
        if hint:
            build_log.line(f"  hint: {hint}")
        await self.buildlogs.close(build_log)
        await self.announcer.announce(deployment.app)

    async def deployment(self, app: str, deployment: str) -> Deployment:
        return await self.store.get_deployment(app, deployment)

    async def deployments(self, app: str) -> tuple[list[Deployment], list[TrafficEntry]]:
        await self.store.get_app(app)
        return await self.store.list_deployments(app), await self.store.get_traffic(app)

    async def _ready_deployment(self, app: str, deployment: str, verb: str) -> Deployment:
        await self.store.get_app(app)  # "no app named 'x'" before "app 'x' has no deployment 'y'"
        found = await self.store.get_deployment(app, deployment)
        if found.status is not DeploymentStatus.READY:
            raise Conflict(
                f"cannot {verb} {deployment}: it is {found.status.value}, not ready",
                hint=f"`roost deployments {app}` shows which deployments are ready",
            )
        return found

    async def promote(self, app: str, deployment: str, kind: str = "deploy.promoted") -> Deployment:
        """Send all production traffic to one ready deployment, atomically."""
        target = await self._ready_deployment(app, deployment, "promote")
        verb = "rolled back to" if kind == "deploy.rollback" else "promoted"
        await self.store.set_traffic(
            AppName(app), [TrafficEntry(target.id, 100)], kind, f"{verb} {target.id} (100% of traffic)"
        )
        await self.lifecycle.reconcile(AppName(app))
        return target

    async def promote_alias(self, app: str, alias: str) -> Deployment:
        """Promote the deployment a branch alias serves (on merge: ship what was previewed)."""
        return await self.promote(app, await self.aliases.target(app, alias))

    async def rollback(self, app: str, deployment: str | None = None) -> Deployment:
        """Back to `deployment`, or to the previous production deployment. No rebuild."""
        if deployment is None:
            await self.store.get_app(app)  # not "no earlier production deployment" for an app that does not exist
            deployment = await self._previous_release(app)
        return await self.promote(app, deployment, kind="deploy.rollback")

    async def _previous_release(self, app: str) -> str:
        traffic = await self.store.get_traffic(app)
        current = traffic[0].deployment if traffic else None
        for candidate in await self.store.release_history(app):
            if candidate == current:
                continue
            try:
                found = await self.store.get_deployment(app, candidate)
            except NotFound:
                continue
            if found.status is DeploymentStatus.READY:
                return found.id
        raise Conflict(
            f"app '{app}' has no earlier production deployment to roll back to",
            hint=f"name one: `roost rollback {app} DEPLOYMENT` (see `roost deployments {app}`)",
        )

    async def set_traffic(self, app: str, weights: Mapping[str, int]) -> list[TrafficEntry]:
        """Split production traffic by weight (they must add up to 100)."""
        await self.store.get_app(app)
        if not weights:
            raise UsageError("no weights given", hint=f"for example: roost traffic {app} DEP1=90 DEP2=10")
        for deployment, weight in weights.items():
            if not 0 <= weight <= TRAFFIC_WEIGHT_MAX:
                raise UsageError(
                    f"weight {weight} for {deployment} is not between 0 and {TRAFFIC_WEIGHT_MAX}",
                    hint=f"use 0 to {TRAFFIC_WEIGHT_MAX}",
                )
            await self._ready_deployment(app, deployment, "route traffic to")
        if sum(weights.values()) != TRAFFIC_WEIGHT_MAX:
            raise UsageError(
                f"the weights add up to {sum(weights.values())}, not 100",
                hint="make them add up to 100, e.g. 90 and 10",
            )
        entries = [TrafficEntry(DeploymentId(d), w) for d, w in weights.items()]
        split = ", ".join(f"{e.deployment}={e.weight}%" for e in entries)
        await self.store.set_traffic(AppName(app), entries, "traffic.split", f"traffic split: {split}")
        await self.lifecycle.reconcile(AppName(app))
        return await self.store.get_traffic(app)


RELEASE_QUOTED_LINES = 5  # of the command's own output, in the deployment's error


def _last_lines(output: str) -> str:
    """ ": | line | line" — the command's last words, kept in the deployment's error."""
    lines = [line.strip() for line in output.splitlines() if line.strip()][-RELEASE_QUOTED_LINES:]
    return f": {' | '.join(lines)}" if lines else ""


def _check_hint(spec: DeploymentSpec) -> str:
    if spec.config.command:
        return "the command (a /bin/sh line) must start a server that listens on $PORT; its output is above"
    return "the app must import and serve on $PORT: check the import, the object name and the output above"
