"""Retention: each app keeps its newest N deployments on disk (plus every one that
carries traffic); then venvs and blobs that nothing references are removed, after
every push and on `roost gc`. Never removes what a build in progress may be using.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from roost.builder import Builder
from roost.control.aliases import AliasUseCases
from roost.control.core import Announcer
from roost.control.lifecycle import LifecycleUseCases
from roost.errors import NotFound
from roost.model import AppName, Deployment, DeploymentStatus
from roost.registry import Registry
from roost.store import Store

log = logging.getLogger("roost.control")
DEFAULT_KEEP = 10
SLACK_SECONDS = 1.0
"""A venv used (created or reused, which touches its marker) or a blob written less than this
before a collection began is kept: a build or an upload that starts while the collection runs,
or a coarse file clock, is safe."""
UPLOAD_GRACE_SECONDS = 600.0
"""A blob no deployment has ever named is an upload whose push has not arrived yet: kept this long."""


@dataclass(frozen=True, slots=True)
class GcReport:
    pruned: list[str] = field(default_factory=list)  # "app/deployment"
    venvs: list[tuple[str, int]] = field(default_factory=list)
    blobs: list[tuple[str, int]] = field(default_factory=list)
    views: list[tuple[str, int]] = field(default_factory=list)  # removed apps' uv cache views

    @property
    def freed_bytes(self) -> int:
        return sum(size for _, size in (*self.venvs, *self.blobs, *self.views))


class RetentionUseCases:
    """Pruning old deployments and collecting unreferenced venvs and blobs."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        builder: Builder,
        lifecycle: LifecycleUseCases,
        announcer: Announcer,
        aliases: AliasUseCases,
        keep_default: int = DEFAULT_KEEP,
    ) -> None:
        self.store = store
        self.registry = registry
        self.builder = builder
        self.lifecycle = lifecycle
        self.announcer = announcer
        self.aliases = aliases
        self.keep_default = keep_default

    async def prune(self, app: str) -> list[Deployment]:
        """Remove the files of deployments past the app's `keep` that carry no traffic and serve no alias."""
        record = await self.store.get_app(app)
        keep = record.config.keep or self.keep_default
        weights = {t.deployment: t.weight for t in await self.store.get_traffic(app)}
        aliased = await self.aliases.held(app)
        kept = 0
        pruned: list[Deployment] = []
        for deployment in await self.store.list_deployments(app):
            if deployment.status in (DeploymentStatus.BUILDING, DeploymentStatus.PRUNED):
                continue
            kept += 1
            if kept > keep and weights.get(deployment.id, 0) == 0 and deployment.id not in aliased:
                pruned.append(deployment)
        for deployment in pruned:
            await self.lifecycle.retire(deployment.id)
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
            await self.announcer.announce(AppName(app))
        return pruned

    async def collect(self) -> GcReport:
        """Remove the venvs and blobs no kept deployment references and no build in progress uses.

        Venvs wait while any deployment is building (its venv is recorded only when it is
        ready); blobs that a deployment ever named go at once, blobs never named yet (an
        upload whose push is still coming) only after UPLOAD_GRACE_SECONDS.
        """
        began = time.time()
        deployments = await self.store.list_deployments()
        kept = [d for d in deployments if d.status is not DeploymentStatus.PRUNED]
        venvs: list[tuple[str, int]] = []
        views: list[tuple[str, int]] = []
        if not any(d.status is DeploymentStatus.BUILDING for d in deployments):
            venv_keys = {Path(d.venv_dir).name for d in kept if d.venv_dir}
            venvs = await self.builder.gc_venvs(venv_keys, grace_seconds=SLACK_SECONDS, now=began)
            views = await self.builder.gc_cache_views({app.name for app in await self.store.list_apps()})
        referenced = {d.digest for d in kept}
        blobs = await self._remove_blobs({d.digest for d in deployments} - referenced, began - SLACK_SECONDS)
        blobs += await self.registry.gc(referenced, grace_seconds=UPLOAD_GRACE_SECONDS)
        return GcReport([], venvs, blobs, views)

    async def _remove_blobs(self, digests: Iterable[str], written_before: float) -> list[tuple[str, int]]:
        """Remove blobs by digest, unless gone or written since `written_before` (uploaded again for
        a push on its way); (digest, bytes) of each removed."""
        freed: list[tuple[str, int]] = []
        for digest in sorted(digests):
            try:
                path = self.registry.path(digest)
            except NotFound:
                continue
            size = await asyncio.to_thread(_unlink_older, path, written_before)
            if size is not None:
                freed.append((digest, size))
        return freed

    async def retain(self, app: str) -> GcReport:
        """After a push: prune the app, then collect what nothing references any more."""
        pruned = [f"{d.app}/{d.id}" for d in await self.prune(app)]
        collected = await self.collect()
        report = replace(collected, pruned=pruned)
        if report.venvs or report.blobs or report.views:
            await self._record(AppName(app), "retention.collected", report)
        return report

    async def gc(self) -> GcReport:
        """Prune every app, then remove venvs and blobs no kept deployment uses."""
        pruned: list[str] = []
        for app in await self.store.list_apps():
            pruned += [f"{d.app}/{d.id}" for d in await self.prune(app.name)]
        collected = await self.collect()
        report = replace(collected, pruned=pruned)
        await self._record(None, "retention.gc", report)
        return report

    async def _record(self, app: AppName | None, kind: str, report: GcReport) -> None:
        await self.store.add_event(
            app,
            kind,
            f"{'gc' if app is None else 'after the push'}: pruned {len(report.pruned)} deployment(s), "
            f"removed {len(report.venvs)} venv(s), {len(report.blobs)} blob(s) and the uv cache views of "
            f"{len(report.views)} removed app(s), {report.freed_bytes} bytes freed",
            {
                "pruned": report.pruned,
                "venvs": [k for k, _ in report.venvs],
                "blobs": [d for d, _ in report.blobs],
                "views": [a for a, _ in report.views],
                "freed_bytes": report.freed_bytes,
            },
        )


def _unlink_older(path: Path, written_before: float) -> int | None:
    with contextlib.suppress(FileNotFoundError):
        info = path.stat()
        if info.st_mtime <= written_before:
            path.unlink()
            return info.st_size
    return None
