"""`LocalRuntime`: the Runtime protocol on this machine's processes.

A facade over the parts it owns: a `ZygoteKeeper` (zygotes), an `InstanceKeeper` (each
instance from spawn to reap), a `ProcessKeeper` (process types such as workers, kept by the
same `InstanceKeeper`), a `LimitWatcher` (CPU budget, memory without cgroups), a
`LivenessWatcher` (health checks of running instances) and a `Notifier` (events and
listeners). Itself it hands out slots synchronously, turns requests for capacity into instance
starts, admits them under the memory budget, converges on counts, and shuts everything down in
parallel. Never parses HTTP (beyond the health check's status line) and never blocks the loop.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from roost.applog import LogBook
from roost.errors import Unavailable
from roost.model import AppName, DeploymentId, InstanceId, InstanceRecord, InstanceState, Mode, ScaleConfig
from roost.runtime.admission import MemoryAdmission
from roost.runtime.backoff import Backoff
from roost.runtime.capacity import pick_least_loaded
from roost.runtime.isolation import Isolation
from roost.runtime.keeper import InstanceKeeper
from roost.runtime.limit_watcher import LimitWatcher
from roost.runtime.liveness import LivenessWatcher
from roost.runtime.notify import Notifier
from roost.runtime.pool import Pool, running_pool
from roost.runtime.probe import run_probe
from roost.runtime.process_keeper import ProcessKeeper
from roost.runtime.protocol import (
    DeploymentSpec,
    DeploymentStats,
    EventSink,
    InstanceInfo,
    ProbeResult,
    ProcessStats,
    ReleaseResult,
    RuntimeListener,
    Slot,
)
from roost.runtime.release import run_release
from roost.runtime.sandbox import Sandbox, SandboxSettings
from roost.runtime.sandbox.readings import read_build_step, read_instances
from roost.runtime.scaling import Scaler
from roost.runtime.strays import kill_strays
from roost.runtime.tuning import RuntimeSettings
from roost.runtime.upkeep import Upkeep
from roost.runtime.zygote_keeper import ZygoteKeeper

TIMEOUT_CLOSE_TASKS = 10.0


def same_instances(old: DeploymentSpec, new: DeploymentSpec) -> bool:
    """Whether instances started for `old` can serve as `new`: code, environment and limits are
    the same, and only mode, scale, preload and the process types' counts (how many run, and how
    they start) differ."""

    def neutral(spec: DeploymentSpec) -> DeploymentSpec:
        processes = tuple(replace(p, count=0) for p in spec.config.processes)
        config = replace(spec.config, mode=Mode.FUNCTION, scale=ScaleConfig(), preload=True, processes=processes)
        return replace(spec, config=config)

    return neutral(old) == neutral(new)


class LocalRuntime:
    """Instances as local child processes: forked from a zygote or started fresh.

    Example::

        runtime = LocalRuntime(home, LogBook(home / "logs"), events, sandbox=SandboxSettings())
        runtime.subscribe(edge)
        await runtime.start()                # detects the sandbox; runtime.sandbox.summary() says what
        await runtime.deploy(spec)           # zygote and a service's `min` instances
        info = await runtime.start_instance(spec.deployment)
        ...
        await runtime.close()                # drain, TERM, grace, KILL: no process left
    """

    def __init__(
        self,
        home: Path,
        logs: LogBook,
        events: EventSink,
        *,
        grace_drain: float = 10.0,
        zygote_idle: float = 1800.0,
        backoff_first: float = 1.0,
        backoff_max: float = 300.0,
        backoff_reset: float = 600.0,
        idle_check_interval: float = 1.0,
        grace_kill: float = 5.0,
        timeout_start: float = 60.0,
        sandbox: SandboxSettings | None = None,
        memory_budget: int = 0,
    ) -> None:
        settings = RuntimeSettings(
            grace_drain=grace_drain,
            grace_kill=grace_kill,
            zygote_idle=zygote_idle,
            idle_check_interval=idle_check_interval,
            timeout_start=timeout_start,
            backoff=Backoff(first=backoff_first, maximum=backoff_max, reset=backoff_reset),
            memory_budget=memory_budget,
        )
        self.sandbox = Sandbox(sandbox or SandboxSettings(), home)
        self._settings = settings
        self._logs = logs
        self._notifier = Notifier(events)
        self._upkeep = Upkeep(home)
        self._zygotes = ZygoteKeeper(settings, self.sandbox, logs, self._notifier, self._upkeep)
        self._keeper = InstanceKeeper(settings, self.sandbox, logs, self._notifier, self._upkeep, self._zygotes)
        self._processes = ProcessKeeper(self._keeper, self._upkeep)
        self._watcher = LimitWatcher(self.sandbox, self._notifier, self._upkeep, self._keeper)
        self._liveness = LivenessWatcher(self._notifier, self._upkeep, self._keeper)
        self._pools: dict[DeploymentId, Pool] = {}
        self._admission = MemoryAdmission(settings, self._pools, self._keeper, self._upkeep)
        self._scaler = Scaler(self._pools, self._keeper, self._admission, self._notifier, self._upkeep)
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def settings(self) -> RuntimeSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: RuntimeSettings) -> None:
        """New settings (tests shorten graces and timeouts) reach every part at once."""
        self._settings = self._zygotes.settings = self._keeper.settings = self._admission.settings = settings

    def subscribe(self, listener: RuntimeListener) -> None:
        self._notifier.subscribe(listener)

    async def start(self) -> None:
        """Detect the sandbox (logged once) and start the sweep (zygote eviction, crash-loop
        expiry, CPU budgets). Idempotent."""
        await self.sandbox.detect()
        if self._sweeper is None:
            await asyncio.to_thread(self.sandbox.sweep_leftovers)
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="runtime sweep")

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.idle_check_interval)
            self._sweep(time.monotonic())

    def _sweep(self, now: float) -> None:
        self._zygotes.evict_idle(self._pools.values(), now)
        self._watcher.police([*self._pools.values(), *self._processes.pools()], now)
        self._liveness.police(self._pools.values(), now)
        for pool in self._pools.values():
            if pool.streak and any(i.healthy_seconds(now) >= self.settings.backoff.reset for i in pool.ready()):
                pool.streak = 0  # healthy long enough: no longer crash-looping
        self._processes.sweep(now, self.settings.backoff.reset)

    # -- deployments ---------------------------------------------------------------------------------------------------

    async def deploy(self, spec: DeploymentSpec) -> None:
        """The web instances first, then the process types (whose new instances are ready
        before this returns, so what they replace drains only after)."""
        if self._upkeep.closing:
            raise Unavailable("the runtime is shutting down")
        await self._deploy_web(spec)
        await self._processes.deploy(spec)

    async def _deploy_web(self, spec: DeploymentSpec) -> None:
        pool = self._pools.get(spec.deployment)
        if pool is None or pool.retiring:
            pool = self._pools[spec.deployment] = Pool(spec)
            if pool.wants_zygote():
                self._zygotes.start(pool)
            self._keeper.keep_floor(pool)
            return
        pool.held = False
        if pool.spec == spec:
            self._keeper.keep_floor(pool)
            return
        if same_instances(pool.spec, spec):
            await self._respec(pool, spec)
            return
        # A new spec (new env): a new zygote, new instances, then the old ones drain.
        pool.spec = spec
        pool.preload_refused = False
        pool.streak, pool.backoff_until, pool.failing_to_start = 0, 0.0, False
        self._zygotes.retire(pool)
        if pool.wants_zygote():
            self._zygotes.start(pool)
        await self._restart_web(spec.deployment)

    async def _respec(self, pool: Pool, spec: DeploymentSpec) -> None:
        """Only how many instances run and whether a zygote stays changed (a scale change, a
        deployment entering or leaving production): the running instances carry on under the
        new settings and idle out as they say, which also keeps a rollback warm for a while."""
        pool.spec = spec
        for instance in pool.live():
            instance.spec = spec
            self._keeper.arm_idle(pool, instance)
        if not pool.wants_zygote():
            self._zygotes.retire(pool)
        elif pool.zygote is not None:
            pool.zygote.spec = spec  # what it imported is the same; forks must still match the pool
        elif pool.zygote_timer is None:
            self._zygotes.start(pool)
        self._keeper.keep_floor(pool)
        if len(pool.live()) > spec.config.scale.max:
            await self._scaler.scale_to(spec.deployment, spec.config.scale.max, "scale.max lowered")

    async def retire(self, deployment: DeploymentId) -> None:
        pool = self._pools.get(deployment)
        if pool is None:
            return
        await asyncio.gather(self._retire_pool(pool), self._processes.retire(deployment))
        if self._pools.get(deployment) is pool:
            del self._pools[deployment]

    async def _retire_pool(self, pool: Pool) -> None:
        pool.retiring = True
        pool.cancel_timers()
        await asyncio.gather(*(self._keeper.stop(pool, i, "retired") for i in list(pool.instances.values())))
        await self._zygotes.stop_all(pool)

    # -- slots ---------------------------------------------------------------------------------------------------------

    def try_acquire(self, deployment: DeploymentId) -> Slot | None:
        pool = self._pools.get(deployment)
        if pool is None:
            return None
        ready = ((i, i.in_flight) for i in pool.instances.values() if i.state is InstanceState.READY)
        instance = pick_least_loaded(ready, pool.spec.config.scale.concurrency)
        if instance is None:
            return None
        instance.take()
        pool.last_request_at = time.time()
        return Slot(instance.id, pool.spec.deployment, instance.host, instance.port, instance.start_kind, self._release)

    def _release(self, slot: Slot) -> None:
        entry = self._keeper.index.get(slot.instance)
        if entry is not None:
            pool, instance = entry
            instance.give_back(time.monotonic())
            self._keeper.arm_idle(pool, instance)
        self._notifier.capacity_changed(slot.deployment)

    # -- how many run: the scaler -----------------------------------------------------------------------------------

    def request_capacity(self, deployment: DeploymentId, slots: int, region: str = "") -> None:
        """`region` is ignored: one machine is one place."""
        self._scaler.request_capacity(deployment, slots)

    async def start_instance(self, deployment: DeploymentId) -> InstanceInfo:
        return await self._scaler.start_instance(deployment)

    async def scale_to(self, deployment: DeploymentId, count: int, reason: str) -> None:
        await self._scaler.scale_to(deployment, count, reason)

    # -- instances -----------------------------------------------------------------------------------------------------

    async def stop_instance(self, instance: InstanceId, reason: str) -> None:
        entry = self._keeper.index.get(instance)
        if entry is not None:
            await self._keeper.stop(entry[0], entry[1], reason)

    async def restart(self, deployment: DeploymentId) -> None:
        await self._restart_web(deployment)
        await self._processes.restart(deployment)

    async def _restart_web(self, deployment: DeploymentId) -> None:
        pool = running_pool(self._pools, deployment, self._upkeep.closing)
        pool.held = False
        old = pool.live()
        count = max(len(old), pool.floor())
        if count:
            fresh = [self._keeper.start(pool) for _ in range(count)]
            outcomes = await asyncio.gather(*(self._keeper.wait_ready(i) for i in fresh))
            if not any(isinstance(o, InstanceInfo) for o in outcomes):
                self._notifier.event(
                    pool.spec.app,
                    "deployment.restart_failed",
                    f"restart of {deployment} failed: no new instance became ready; the old ones keep serving",
                    deployment=deployment,
                    reasons=[o for o in outcomes if isinstance(o, str)],
                )
                return
            await asyncio.gather(*(self._keeper.stop(pool, i, "replaced by a restart") for i in old))
        self._zygotes.evict_old(pool)

    async def drain(self, deployment: DeploymentId) -> None:
        pool = self._pools.get(deployment)
        if pool is None:
            return
        pool.held = True  # no floor until something asks for an instance again
        if pool.restart_timer is not None:
            pool.restart_timer.cancel()
            pool.restart_timer = None
        await asyncio.gather(
            *(self._keeper.stop(pool, i, "drained") for i in pool.live()), self._processes.drain(deployment, "drained")
        )

    def instances(self, deployment: DeploymentId | None = None) -> list[InstanceInfo]:
        """Live instances (starting, ready, draining), then up to 5 recently finished ones per
        deployment (stopped, crashed) so their reason can be shown."""
        if deployment is None:
            pools = list(self._pools.values())
        else:
            pools = [self._pools[deployment]] if deployment in self._pools else []
        live = [i.info() for pool in pools for i in pool.instances.values()]
        return live + [info for pool in pools for info in pool.finished] + self._processes.instances(deployment)

    def stats(self, deployment: DeploymentId) -> DeploymentStats:
        """Counters; `last_request_at` is wall-clock time (time.time()). Zeros for an unknown deployment."""
        pool = self._pools.get(deployment)
        if pool is None:
            return DeploymentStats(deployment, 0, 0, 0, 0, 0, None)
        return pool.stats()

    async def isolation(self, deployment: DeploymentId | None = None) -> dict[InstanceId, Isolation]:
        every = [*self._pools.values(), *self._processes.pools()]
        pools = [p for p in every if deployment in (None, p.deployment)]
        live = [(InstanceId(i.id), i.pid, p.spec) for p in pools for i in p.live() if i.pid is not None]
        return await read_instances(self.sandbox, live, [p.spec for p in self._pools.values()])

    async def isolation_of_build(
        self, pid: int, argv: Sequence[str], app: AppName, build_dir: Path
    ) -> Isolation | None:
        running = [p.spec for p in self._pools.values()]
        return await read_build_step(self.sandbox, pid, argv, app, build_dir, running)

    async def probe(self, spec: DeploymentSpec, limit_seconds: float) -> ProbeResult:
        tmpdir = self._upkeep.tmpdir(f"probe-{spec.deployment}-{secrets.token_hex(3)}")
        return await run_probe(spec, limit_seconds, tmpdir, self._logs, self.settings.grace_kill, self.sandbox)

    async def probe_process(self, spec: DeploymentSpec, process: str) -> ProbeResult:
        return await self._processes.probe(spec, process)

    def process_stats(self, deployment: DeploymentId) -> list[ProcessStats]:
        return self._processes.stats(deployment)

    async def release(self, spec: DeploymentSpec, on_line: Callable[[str], None]) -> ReleaseResult:
        tmpdir = self._upkeep.tmpdir(f"release-{spec.deployment}-{secrets.token_hex(3)}")
        return await run_release(spec, tmpdir, self._logs, on_line, self.settings.grace_kill, self.sandbox)

    async def recover(self, leftovers: Sequence[InstanceRecord]) -> list[str]:
        """SIGKILL the process group of each leftover that is still Roost's (see `strays`)."""
        records = [(r.pid, r.pgid or r.pid) for r in leftovers if r.pid]
        killed = await asyncio.to_thread(kill_strays, records) if records else []
        return [f"process group {pgid}" for pgid in killed]

    async def close(self) -> None:
        """Drain and stop every instance and zygote in parallel; leaves no process behind."""
        self._upkeep.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.wait([self._sweeper])
        pools = list(self._pools.values())
        for pool in pools:
            pool.cancel_timers()
        deployments = {pool.deployment for pool in [*pools, *self._processes.pools()]}
        await asyncio.gather(
            *(self._retire_pool(pool) for pool in pools),
            *(self._processes.retire(DeploymentId(d)) for d in deployments),
        )
        self._pools.clear()
        await self._upkeep.finish(TIMEOUT_CLOSE_TASKS)
        await asyncio.to_thread(self.sandbox.release)
