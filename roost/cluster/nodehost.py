"""`LocalNodeHost`: what a machine's daemon does for the cluster's head (`contract.NodeHost`), on
this machine's own `Runtime` (a `LocalRuntime`), `Builder` and `Registry`.

A node never decides how many instances run: the head's assignments say it, and every deployment
is kept at exactly that count (`with_count`); nothing idles out, no process type runs here. The
head's own daemon hosts one too, over its runtime: nothing here assumes `roost node join`.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from roost.applog import LogBook
from roost.builder import Builder, BuildRequest
from roost.cluster.contract import (
    Artifact,
    Assignment,
    ClusterMap,
    Demand,
    NodeEvent,
    NodeIdentity,
    NodeReport,
)
from roost.errors import DigestMismatch, NotFound, UsageError
from roost.model import AppConfig, AppName, DeploymentId, InstanceId, Mode
from roost.registry import Registry, parse_digest
from roost.runtime.protocol import DeploymentSpec, Isolation, Runtime

log = logging.getLogger("roost.cluster.node")
LIMIT_EVENTS = 1000  # events kept between two reports (the head asks every half second)
IDLE_NEVER = 10 * 365 * 86400.0  # seconds: instances never idle out on a node; the head's autoscaler sleeps them


@dataclass(frozen=True, slots=True)
class BuiltPaths:
    """A deployment this machine has built already (the head's control did): its code and venv."""

    code_dir: Path
    venv_dir: Path


FindBuild = Callable[[Artifact], Awaitable[BuiltPaths | None]]


class NodeEvents:
    """The `EventSink` a node's runtime reports to: the newest `limit` events, until `take`.

    On the head, the daemon's sink calls both its store's recorder and this."""

    def __init__(self, limit: int = LIMIT_EVENTS) -> None:
        self._events: collections.deque[NodeEvent] = collections.deque(maxlen=limit)

    def __call__(self, app: AppName, kind: str, message: str, data: Mapping[str, object]) -> None:
        self._events.append(NodeEvent(app, kind, message, dict(data)))

    def take(self) -> tuple[NodeEvent, ...]:
        """Every event kept since the last take, oldest first."""
        events = tuple(self._events)
        self._events.clear()
        return events


def held_config(config: AppConfig) -> AppConfig:
    """A deployment's config as a node keeps it: no instance of its own accord (function mode, so
    no floor of one; min = max = 0), none idles out, and no process type (they stay on the head)."""
    scale = replace(config.scale, min=0, max=0, idle_timeout=IDLE_NEVER)
    processes = tuple(replace(process, count=0) for process in config.processes)
    return replace(config, mode=Mode.FUNCTION, scale=scale, processes=processes)


def with_count(spec: DeploymentSpec, count: int) -> DeploymentSpec:
    """`spec` held at exactly `count` web instances: the runtime keeps that many, restarts a
    crashed one (with back-off), and drains the extras when it is lowered."""
    scale = replace(spec.config.scale, min=count, max=count)
    return replace(spec, config=replace(spec.config, scale=scale))


def registry_digest(digest: str) -> str:
    """'sha256:<hex>' for a digest given with or without its prefix; UsageError when malformed."""
    full = digest if digest.startswith("sha256:") else f"sha256:{digest}"
    parse_digest(full)
    return full


def check_archive(artifact: Artifact, archive: bytes) -> str:
    """The registry's digest of `archive`; DigestMismatch naming both when it is not the artifact's.
    Blocking (hashing): call it in a thread."""
    expected = registry_digest(artifact.digest)
    actual = f"sha256:{hashlib.sha256(archive).hexdigest()}"
    if actual != expected:
        raise DigestMismatch(
            f"the archive of deployment {artifact.deployment} ({artifact.app}) does not match its digest: "
            f"expected {expected}, received {actual}",
            hint="the archive was cut or changed between the head and this node; the head sends it again",
        )
    return expected


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


class LocalNodeHost:
    """`contract.NodeHost` on this machine.

    Example (a node's daemon)::

        events = NodeEvents()
        runtime = LocalRuntime(home, logs, events, sandbox=...)
        host = LocalNodeHost(identity, runtime, builder, Registry(home / "blobs"), logs, events,
                             demand=edges_demand, on_map=lambda view: edge.update_routes(view.routes))
        await host.prepare(artifact, archive)     # verified, kept, built
        await host.assign(Assignment(artifact.deployment, 2))
    """

    def __init__(
        self,
        identity: NodeIdentity,
        runtime: Runtime,
        builder: Builder,
        registry: Registry,
        logs: LogBook,
        events: NodeEvents,
        *,
        demand: Callable[[], Mapping[DeploymentId, Demand]],
        on_map: Callable[[ClusterMap], None],
        find_build: FindBuild | None = None,
    ) -> None:
        self.identity = identity
        self._runtime = runtime
        self._builder = builder
        self._registry = registry
        self._logs = logs
        self._events = events
        self._demand = demand
        self._on_map = on_map
        self._find_build = find_build
        self._prepared: dict[DeploymentId, DeploymentSpec] = {}
        self._preparing: dict[DeploymentId, asyncio.Lock] = {}
        self._assigning: dict[DeploymentId, asyncio.Lock] = {}
        self._map: ClusterMap | None = None

    @property
    def cluster_map(self) -> ClusterMap | None:
        """The newest map the head sent; None before the first."""
        return self._map

    def prepared(self, deployment: DeploymentId) -> DeploymentSpec | None:
        """The spec this node keeps for `deployment` (counts held at 0), or None."""
        return self._prepared.get(deployment)

    async def hello(self) -> NodeIdentity:
        return self.identity

    async def prepare(self, artifact: Artifact, archive: bytes) -> float:
        """Verify, keep and build; one build per deployment at a time (a second call waits for the
        first and returns 0.0 if it succeeded). A deployment prepared already takes the artifact's
        config and env (`roost env set` changed them): the next assignment runs instances with
        them. Raises DigestMismatch, BuildFailed, NoSpace."""
        started = time.monotonic()
        digest = await asyncio.to_thread(check_archive, artifact, archive)
        lock = self._preparing.setdefault(artifact.deployment, asyncio.Lock())
        async with lock:
            known = self._prepared.get(artifact.deployment)
            if known is not None:
                self._prepared[artifact.deployment] = replace(
                    known, config=held_config(artifact.config), env=dict(artifact.env)
                )
                return 0.0
            paths = await self._find_build(artifact) if self._find_build is not None else None
            if paths is None:
                paths = await self._build(artifact, digest, archive)
            spec = DeploymentSpec(
                artifact.app, artifact.deployment, paths.code_dir, paths.venv_dir, held_config(artifact.config)
            )
            self._prepared[artifact.deployment] = replace(spec, env=dict(artifact.env))
        return time.monotonic() - started

    async def _build(self, artifact: Artifact, digest: str, archive: bytes) -> BuiltPaths:
        """The archive into this node's registry (a blob already there is reused), then built, the
        build's lines in the app's log as on the head."""
        if not await asyncio.to_thread(self._registry.has, digest):
            await self._registry.put(digest, _one_chunk(archive))

        def line(text: str) -> None:
            self._logs.write(artifact.app, artifact.deployment, "build", text)

        line(f"==> building {artifact.deployment} on node {self.identity.name}")
        request = BuildRequest(artifact.app, artifact.deployment, self._registry.path(digest))
        output = await self._builder.build(request, line)
        return BuiltPaths(output.code_dir, output.venv_dir)

    async def assign(self, assignment: Assignment) -> None:
        """Keep exactly `count` instances; NotFound when the deployment was not prepared here."""
        if assignment.count < 0:
            raise UsageError(f"cannot run {assignment.count} instances", hint="an assignment's count is 0 or more")
        lock = self._assigning.setdefault(assignment.deployment, asyncio.Lock())
        async with lock:  # in the order they came: the last one wins
            spec = self._prepared.get(assignment.deployment)
            if spec is None:
                raise NotFound(
                    f"deployment {assignment.deployment} is not prepared on node {self.identity.name}",
                    hint="the head prepares a deployment on a node before it assigns instances there",
                )
            await self._runtime.deploy(with_count(spec, assignment.count))

    async def stop_instance(self, instance: InstanceId, reason: str) -> None:
        await self._runtime.stop_instance(instance, reason)

    async def retire(self, deployment: DeploymentId) -> None:
        self._prepared.pop(deployment, None)
        await self._runtime.retire(deployment)
        self._assigning.pop(deployment, None)

    async def report(self) -> NodeReport:
        return NodeReport(
            identity=self.identity,
            instances=tuple(self._runtime.instances()),
            demand=dict(self._demand()),
            events=self._events.take(),
            prepared=frozenset(self._prepared),
        )

    async def show(self, view: ClusterMap) -> None:
        """Keep `view` and hand it on unless an as new or newer one came first."""
        if self._map is not None and view.version <= self._map.version:
            return
        self._map = view
        self._on_map(view)

    async def isolation(self, deployment: DeploymentId | None) -> dict[InstanceId, Isolation]:
        return await self._runtime.isolation(deployment)
