"""Retention: each app keeps its newest N deployments on disk (plus every one that
carries traffic); `gc` then removes venvs and blobs that nothing references."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from roost.control.lifecycle import LifecycleUseCases
from roost.model import AppName, Deployment, DeploymentStatus

log = logging.getLogger("roost.control")
DEFAULT_KEEP = 10


@dataclass(frozen=True, slots=True)
class GcReport:
    pruned: list[str] = field(default_factory=list)  # "app/deployment"
    venvs: list[tuple[str, int]] = field(default_factory=list)
    blobs: list[tuple[str, int]] = field(default_factory=list)

    @property
    def freed_bytes(self) -> int:
        return sum(size for _, size in self.venvs) + sum(size for _, size in self.blobs)


class RetentionUseCases(LifecycleUseCases):
    keep_default: int = DEFAULT_KEEP

    async def prune(self, app: str) -> list[Deployment]:
        """Remove the files of deployments past the app's `keep` that carry no traffic."""
        record = await self.store.get_app(app)
        keep = record.config.keep or self.keep_default
        weights = {t.deployment: t.weight for t in await self.store.get_traffic(app)}
        kept = 0
        pruned: list[Deployment] = []
        for deployment in await self.store.list_deployments(app):
            if deployment.status in (DeploymentStatus.BUILDING, DeploymentStatus.PRUNED):
                continue
            kept += 1
            if kept > keep and weights.get(deployment.id, 0) == 0:
                pruned.append(deployment)
        for deployment in pruned:
            if self._registered.pop(deployment.id, None) is not None:
                await self.runtime.retire(deployment.id)
            await self.builder.remove_deployment(deployment.app, deployment.id)
            await self.store.mark_pruned(deployment.id)
        if pruned:
            names = ", ".join(d.id for d in pruned)
            await self.store.add_event(
                app,
                "retention.pruned",
                f"removed the files of {names} (keeping {keep})",
                {"deployments": [d.id for d in pruned]},
            )
            await self._announce(AppName(app))
        return pruned

    async def gc(self) -> GcReport:
        """Prune every app, then remove venvs and blobs no kept deployment uses."""
        pruned: list[str] = []
        for app in await self.store.list_apps():
            pruned += [f"{d.app}/{d.id}" for d in await self.prune(app.name)]
        deployments = [d for d in await self.store.list_deployments() if d.status is not DeploymentStatus.PRUNED]
        venv_keys = {Path(d.venv_dir).name for d in deployments if d.venv_dir}
        building = any(d.status is DeploymentStatus.BUILDING for d in deployments)
        venvs = [] if building else await self.builder.gc_venvs(venv_keys)
        blobs = await self.registry.gc({d.digest for d in deployments})
        report = GcReport(pruned, venvs, blobs)
        await self.store.add_event(
            None,
            "retention.gc",
            f"gc: pruned {len(pruned)} deployment(s), removed {len(venvs)} venv(s) and {len(blobs)} blob(s),"
            f" {report.freed_bytes} bytes freed",
        )
        return report
