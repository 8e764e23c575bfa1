"""`ProcessKeeper`: each deployment's process types (workers, clocks), `count` of each.

A process type runs as instances of a spec derived from its deployment's (its command, its
limits, no $PORT), in a `Pool` of its own that the `InstanceKeeper` keeps exactly as it keeps
web instances: the same launch path, sandbox, back-off and crash-looping state. This module
only decides how many run and in what order (new ones ready before old ones go). It never
routes a request to them: their pools are not the supervisor's.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from roost.model import DeploymentId, Mode, ProcessType, ScaleConfig
from roost.runtime.instance import Instance
from roost.runtime.keeper import InstanceKeeper
from roost.runtime.pool import Pool
from roost.runtime.protocol import DeploymentSpec, InstanceInfo, ProbeResult, ProcessStats
from roost.runtime.upkeep import Upkeep


def process_spec(spec: DeploymentSpec, process: ProcessType) -> DeploymentSpec:
    """The spec of one process type's instances: started fresh, `count` of them kept, with
    neither the web's health check (it has no port) nor the release (a deployment's, once)."""
    config = replace(
        spec.config,
        check=None,
        release=None,
        entrypoint=None,
        command=process.command,
        mode=Mode.FUNCTION,
        preload=False,
        scale=replace(ScaleConfig(), min=process.count, max=max(1, process.count)),
        limits=process.limits,
        crons=(),
        processes=(),
    )
    return replace(spec, config=config, process=process)


def same_but_count(old: DeploymentSpec, new: DeploymentSpec) -> bool:
    """Whether running instances of `old` may stay under `new`: only the count changed."""

    def neutral(spec: DeploymentSpec) -> DeploymentSpec:
        process = spec.process
        return process_spec(spec, replace(process, count=0)) if process is not None else spec

    return neutral(old) == neutral(new)


class ProcessKeeper:
    """The process types of every deployment: started on deploy, converged on their counts,
    rolled on a new spec, drained on retire. Crashes are the `InstanceKeeper`'s to handle."""

    def __init__(self, keeper: InstanceKeeper, upkeep: Upkeep) -> None:
        self._keeper = keeper
        self._upkeep = upkeep
        self._pools: dict[DeploymentId, dict[str, Pool]] = {}

    def pools(self) -> list[Pool]:
        return [pool for own in self._pools.values() for pool in own.values()]

    async def deploy(self, spec: DeploymentSpec) -> None:
        """Converge the deployment's process types on `spec`: types it no longer has drain, new
        instances become ready before any they replace (a new env) or outnumber (a lower count) go."""
        own = self._pools.setdefault(spec.deployment, {})
        wanted = {process.name for process in spec.config.processes}
        for name in [name for name in own if name not in wanted]:
            self._drain_pool(own.pop(name), "its process type is gone")
        fresh: list[Instance] = []
        for process in spec.config.processes:
            fresh += self._converge(own, process_spec(spec, process))
        await self._wait_ready(fresh)

    def _converge(self, own: dict[str, Pool], spec: DeploymentSpec) -> list[Instance]:
        """Start what is missing (returned), stop what is over the count once started."""
        assert spec.process is not None  # noqa: S101 - process_spec sets it
        pool = own.get(spec.process.name)
        if pool is None:
            pool = own[spec.process.name] = Pool(spec)
            return self._fill(pool)
        pool.held = False
        old = pool.live()
        if not same_but_count(pool.spec, spec):  # a new env: new instances, then the old ones go
            pool.spec = spec
            pool.streak, pool.backoff_until = 0, 0.0
            fresh = [self._keeper.start(pool) for _ in range(spec.process.count)]
            self._upkeep.keep_task(self._replace(pool, fresh, old), name=f"roll {spec.process.name}")
            return fresh
        pool.spec = spec
        for instance in old:
            instance.spec = spec
        fresh = self._fill(pool)
        extra = len(old) - spec.process.count
        if extra > 0:
            self._stop_later(pool, sorted(old, key=lambda i: i.started_at)[-extra:], "scaled down")
        return fresh

    def _fill(self, pool: Pool) -> list[Instance]:
        before = set(pool.instances)
        self._keeper.keep_floor(pool)
        return [i for key, i in pool.instances.items() if key not in before]

    async def _replace(self, pool: Pool, fresh: list[Instance], old: list[Instance]) -> None:
        await self._wait_ready(fresh)
        self._stop_later(pool, old, "replaced by a new spec")

    async def _wait_ready(self, fresh: list[Instance]) -> None:
        """Until each new instance is ready or has ended: a failure is the keeper's to report."""
        await asyncio.gather(*(self._keeper.wait_ready(i) for i in fresh))

    def _stop_later(self, pool: Pool, instances: list[Instance], reason: str) -> None:
        """Out of the count now (synchronously); TERM, grace, KILL in the background."""
        for instance in instances:
            if self._keeper.begin_stop(pool, instance, reason):
                self._upkeep.keep_task(self._keeper.complete_stop(instance), name=f"stop {instance.id}")

    def _drain_pool(self, pool: Pool, reason: str) -> None:
        pool.retiring = True
        pool.cancel_timers()
        self._stop_later(pool, pool.live(), reason)

    async def restart(self, deployment: DeploymentId) -> None:
        """Rolling restart: as many new instances of each type, ready before the old ones go."""
        for pool in self._pools.get(deployment, {}).values():
            pool.held = False
            old = pool.live()
            fresh = [self._keeper.start(pool) for _ in range(max(len(old), pool.floor()))]
            await self._wait_ready(fresh)
            self._stop_later(pool, old, "replaced by a restart")

    async def drain(self, deployment: DeploymentId, reason: str) -> None:
        """Stop every process instance of the deployment (TERM, grace, KILL); it stays known."""
        pools = list(self._pools.get(deployment, {}).values())
        for pool in pools:
            pool.held = True
            pool.cancel_timers()
        await asyncio.gather(*(self._keeper.stop(pool, i, reason) for pool in pools for i in pool.live()))

    async def retire(self, deployment: DeploymentId) -> None:
        """Stop everything of the deployment's process types and forget them."""
        own = self._pools.pop(deployment, {})
        for pool in own.values():
            pool.retiring = True
            pool.cancel_timers()
        await asyncio.gather(
            *(self._keeper.stop(pool, i, "retired") for pool in own.values() for i in list(pool.instances.values()))
        )

    def instances(self, deployment: DeploymentId | None) -> list[InstanceInfo]:
        pools = [p for p in self.pools() if deployment in (None, p.deployment)]
        return [i.info() for p in pools for i in p.instances.values()] + [f for p in pools for f in p.finished]

    def stats(self, deployment: DeploymentId) -> list[ProcessStats]:
        return [
            ProcessStats(
                deployment=deployment,
                process=name,
                wanted=pool.floor(),
                ready=len(pool.ready()),
                starting=sum(1 for i in pool.live() if not i.is_ready()),
                restarts=pool.crashes,
                crash_looping=pool.stats().crash_looping,
                last_failure=pool.last_failure,
            )
            for name, pool in self._pools.get(deployment, {}).items()
        ]

    async def probe(self, spec: DeploymentSpec, name: str) -> ProbeResult:
        """One throwaway instance of the type, in a pool of its own that keeps none (count 0):
        ready after its `ready_after`, then stopped; or the reason and last lines it ended with."""
        process = spec.config.process(name)
        if process is None:
            return ProbeResult(False, 0.0, f"the deployment has no process type '{name}'", "")
        pool = Pool(process_spec(spec, replace(process, count=0)))
        started = time.monotonic()
        instance = self._keeper.start(pool)
        outcome = await self._keeper.wait_ready(instance)
        seconds = time.monotonic() - started
        output = "\n".join(instance.output.tail)
        if isinstance(outcome, str):
            return ProbeResult(False, seconds, f"process type '{name}' {outcome}", output)
        await self._keeper.stop(pool, instance, "build check done")
        return ProbeResult(True, seconds, f"process type '{name}' stayed up {process.ready_after:g}s", output)

    def sweep(self, now: float, reset: float) -> None:
        """A process type healthy for `reset` seconds is no longer crash-looping."""
        for pool in self.pools():
            if pool.streak and any(i.healthy_seconds(now) >= reset for i in pool.ready()):
                pool.streak = 0
