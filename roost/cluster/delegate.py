"""`LocalDelegate`: every `Runtime` method passed, unchanged, to this node's `LocalRuntime`.

An edge's runtime in a cluster (`edgeview.py`) changes only where slots come from and where
capacity requests go; everything else (deploying, stopping, counting, reading isolation back)
stays the node's own runtime's, and is written here once rather than in each view. Holds no
state of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from roost.model import AppName, DeploymentId, InstanceId, InstanceRecord
from roost.runtime.protocol import (
    DeploymentSpec,
    DeploymentStats,
    InstanceInfo,
    Isolation,
    ProbeResult,
    ProcessStats,
    ReleaseResult,
    Runtime,
    RuntimeListener,
    Slot,
)


class LocalDelegate:
    """A `Runtime` that is `local`, method by method; a view replaces the methods it changes."""

    def __init__(self, local: Runtime) -> None:
        self.local = local

    def subscribe(self, listener: RuntimeListener) -> None:
        self.local.subscribe(listener)

    def try_acquire(self, deployment: DeploymentId) -> Slot | None:
        return self.local.try_acquire(deployment)

    def request_capacity(self, deployment: DeploymentId, slots: int, region: str = "") -> None:
        self.local.request_capacity(deployment, slots, region)

    async def deploy(self, spec: DeploymentSpec) -> None:
        await self.local.deploy(spec)

    async def retire(self, deployment: DeploymentId) -> None:
        await self.local.retire(deployment)

    async def start_instance(self, deployment: DeploymentId) -> InstanceInfo:
        return await self.local.start_instance(deployment)

    async def stop_instance(self, instance: InstanceId, reason: str) -> None:
        await self.local.stop_instance(instance, reason)

    async def scale_to(self, deployment: DeploymentId, count: int, reason: str) -> None:
        await self.local.scale_to(deployment, count, reason)

    async def restart(self, deployment: DeploymentId) -> None:
        await self.local.restart(deployment)

    async def drain(self, deployment: DeploymentId) -> None:
        await self.local.drain(deployment)

    def instances(self, deployment: DeploymentId | None = None) -> list[InstanceInfo]:
        return self.local.instances(deployment)

    def stats(self, deployment: DeploymentId) -> DeploymentStats:
        return self.local.stats(deployment)

    async def isolation(self, deployment: DeploymentId | None = None) -> dict[InstanceId, Isolation]:
        return await self.local.isolation(deployment)

    async def isolation_of_build(
        self, pid: int, argv: Sequence[str], app: AppName, build_dir: Path
    ) -> Isolation | None:
        return await self.local.isolation_of_build(pid, argv, app, build_dir)

    async def probe(self, spec: DeploymentSpec, limit_seconds: float) -> ProbeResult:
        return await self.local.probe(spec, limit_seconds)

    async def probe_process(self, spec: DeploymentSpec, process: str) -> ProbeResult:
        return await self.local.probe_process(spec, process)

    def process_stats(self, deployment: DeploymentId) -> list[ProcessStats]:
        return self.local.process_stats(deployment)

    async def release(self, spec: DeploymentSpec, on_line: Callable[[str], None]) -> ReleaseResult:
        return await self.local.release(spec, on_line)

    async def close(self) -> None:
        await self.local.close()

    async def recover(self, leftovers: Sequence[InstanceRecord]) -> list[str]:
        return await self.local.recover(leftovers)
