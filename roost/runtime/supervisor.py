"""`LocalRuntime`: the Runtime protocol on this machine's processes.

Hands out slots synchronously, turns requests for capacity into instance
starts, converges on counts, and shuts everything down in parallel. Never
parses HTTP (beyond the build probe's status line) and never blocks the loop.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from roost.applog import LogBook
from roost.errors import Unavailable
from roost.model import AppName, DeploymentId, InstanceId, InstanceState, Mode, ScaleConfig
from roost.runtime.backoff import BACKOFF_SLACK, Backoff
from roost.runtime.budget import Candidate, describe, plan_room
from roost.runtime.capacity import clamp_count, floor_count, pick_least_loaded, pick_surplus, starts_needed
from roost.runtime.instance import Instance
from roost.runtime.notify import Settings
from roost.runtime.policing import LimitWatcher
from roost.runtime.pool import Pool
from roost.runtime.probe import run_probe
from roost.runtime.protocol import DeploymentSpec, DeploymentStats, EventSink, InstanceInfo, ProbeResult, Slot
from roost.runtime.sandbox import Sandbox, SandboxSettings
from roost.runtime.sandbox.isolation import Isolation
from roost.runtime.sandbox.readings import read_build_step, read_instances

TIMEOUT_CLOSE_TASKS = 10.0


def same_instances(old: DeploymentSpec, new: DeploymentSpec) -> bool:
    """Whether instances started for `old` can serve as `new`: code, environment and limits are
    the same, and only mode, scale and preload (how many run, and how they start) differ."""

    def neutral(spec: DeploymentSpec) -> DeploymentSpec:
        return replace(spec, config=replace(spec.config, mode=Mode.FUNCTION, scale=ScaleConfig(), preload=True))

    return neutral(old) == neutral(new)


RETRY_AFTER_FULL = 5  # seconds a client is told to wait when the host has no room


class LocalRuntime(LimitWatcher):
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
        settings = Settings(
            grace_drain=grace_drain,
            grace_kill=grace_kill,
            zygote_idle=zygote_idle,
            idle_check_interval=idle_check_interval,
            timeout_start=timeout_start,
            backoff=Backoff(first=backoff_first, maximum=backoff_max, reset=backoff_reset),
            memory_budget=memory_budget,
        )
        super().__init__(home, logs, events, settings, Sandbox(sandbox or SandboxSettings(), home))
        self._sweeper: asyncio.Task[None] | None = None
        self._evicting: set[InstanceId] = set()  # stopping to make room under the memory budget

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
        self._evict_idle_zygotes(now)
        self._police(now)
        for pool in self._pools.values():
            if pool.streak and any(i.healthy_seconds(now) >= self.settings.backoff.reset for i in pool.ready()):
                pool.streak = 0  # healthy long enough: no longer crash-looping

    # -- deployments ---------------------------------------------------------------------------------------------------

    async def deploy(self, spec: DeploymentSpec) -> None:
        if self._closing:
            raise Unavailable("the runtime is shutting down")
        pool = self._pools.get(spec.deployment)
        if pool is None or pool.retiring:
            pool = self._pools[spec.deployment] = Pool(spec)
            if pool.wants_zygote():
                self._start_zygote(pool)
            self._keep_floor(pool)
            return
        pool.held = False
        if pool.spec == spec:
            self._keep_floor(pool)
            return
        if same_instances(pool.spec, spec):
            await self._respec(pool, spec)
            return
        # A new spec (new env): a new zygote, new instances, then the old ones drain.
        pool.spec = spec
        pool.preload_refused = False
        pool.streak, pool.backoff_until, pool.failing_to_start = 0, 0.0, False
        self._retire_zygote(pool)
        if pool.wants_zygote():
            self._start_zygote(pool)
        await self.restart(spec.deployment)

    async def _respec(self, pool: Pool, spec: DeploymentSpec) -> None:
        """Only how many instances run and whether a zygote stays changed (a scale change, a
        deployment entering or leaving production): the running instances carry on under the
        new settings and idle out as they say, which also keeps a rollback warm for a while."""
        pool.spec = spec
        for instance in pool.live():
            instance.spec = spec
            self._arm_idle(pool, instance)
        if not pool.wants_zygote():
            self._retire_zygote(pool)
        elif pool.zygote is not None:
            pool.zygote.spec = spec  # what it imported is the same; forks must still match the pool
        elif pool.zygote_timer is None:
            self._start_zygote(pool)
        self._keep_floor(pool)
        if len(pool.live()) > spec.config.scale.max:
            await self.scale_to(spec.deployment, spec.config.scale.max, "scale.max lowered")

    async def retire(self, deployment: DeploymentId) -> None:
        pool = self._pools.get(deployment)
        if pool is None:
            return
        await self._retire_pool(pool)
        if self._pools.get(deployment) is pool:
            del self._pools[deployment]

    async def _retire_pool(self, pool: Pool) -> None:
        pool.retiring = True
        pool.cancel_timers()
        await asyncio.gather(*(self._stop(pool, i, "retired") for i in list(pool.instances.values())))
        await self._stop_zygotes(pool)

    def _known(self, deployment: DeploymentId) -> Pool:
        pool = self._pools.get(deployment)
        if pool is None or pool.retiring or self._closing:
            raise Unavailable(f"deployment {deployment} is not running", hint="deploy it first (roost start APP)")
        return pool

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
        entry = self._instances.get(slot.instance)
        if entry is not None:
            pool, instance = entry
            instance.give_back(time.monotonic())
            self._arm_idle(pool, instance)
        self._capacity_changed(slot.deployment)

    def request_capacity(self, deployment: DeploymentId, slots: int) -> None:
        pool = self._pools.get(deployment)
        if pool is None or pool.retiring or self._closing:
            return
        pool.held = False
        wait = pool.backoff_until - time.monotonic()
        if pool.failing_to_start and wait > 0:
            reason = f"{pool.last_failure} (next start in {wait:.0f}s)"
            asyncio.get_running_loop().call_soon(self._start_failed, deployment, reason)
            return
        config = pool.spec.config
        count = starts_needed(
            slots=slots,
            free=pool.free_slots(),
            starting=pool.count(InstanceState.STARTING),
            live=len(pool.live()),
            concurrency=config.scale.concurrency,
            maximum=config.scale.max,
        )
        admitted = self._admit(pool, count)
        if admitted:
            self._record_demand_start(pool, slots, admitted)
        for _ in range(admitted):
            self._start(pool)
        if count and not admitted and not pool.live():
            reason = f"the host's memory budget ({describe(self.settings.memory_budget)}) is full"
            asyncio.get_running_loop().call_soon(self._start_failed, deployment, reason, RETRY_AFTER_FULL)

    def _record_demand_start(self, pool: Pool, waiting: int, admitted: int) -> None:
        """Starts for requests that found no free slot are scale decisions too (the autoscaler's
        windows see them only a tick later): the same `scale` event, from, to and why."""
        current = len(pool.live())
        wanted = "a request is" if waiting == 1 else f"{waiting} requests are"
        reason = f"{wanted} waiting for a free slot"
        self._event(
            pool.spec.app,
            "scale",
            f"{pool.deployment}: {current} -> {current + admitted} instances ({reason})",
            deployment=pool.deployment,
            **{"from": current, "to": current + admitted, "reason": reason},
        )

    # -- instances -----------------------------------------------------------------------------------------------------

    async def start_instance(self, deployment: DeploymentId) -> InstanceInfo:
        pool = self._known(deployment)
        pool.held = False
        live = pool.live()
        if live and len(live) >= max(1, pool.spec.config.scale.max):
            ready = pool.ready()
            if ready:
                return min(ready, key=lambda i: i.in_flight).info()
            instance = live[0]
        elif not self._admit(pool, 1):
            raise Unavailable(
                f"no room for another instance of {pool.spec.app}: the host's memory budget "
                f"({describe(self.settings.memory_budget)}) is full",
                hint="stop an app, lower limits.memory, or raise --memory-budget",
            )
        else:
            instance = self._start(pool)
        outcome = await self._wait_ready(instance)
        if isinstance(outcome, str):
            raise Unavailable(
                f"instance {instance.id} of {pool.spec.app} could not start: {outcome}",
                hint=f"see `roost logs {pool.spec.app}`",
            )
        return outcome

    def _admit(self, pool: Pool, count: int) -> int:
        """How many of `count` new instances of `pool` the memory budget allows, after stopping
        least recently used idle instances of other apps to make room."""
        budget = self.settings.memory_budget
        if budget <= 0 or count <= 0:
            return count
        need = pool.spec.config.limits.memory
        live = [(p, i) for p in self._pools.values() for i in p.live()]
        reserved = sum(i.spec.config.limits.memory for _, i in live if i.id not in self._evicting)
        candidates = [
            Candidate(i.id, i.spec.config.limits.memory, i.last_used)
            for p, i in live
            if p.spec.app != pool.spec.app and i.is_ready() and i.in_flight == 0 and i.id not in self._evicting
        ]
        admitted = 0
        while admitted < count:
            plan = plan_room(budget, reserved, need, candidates)
            if not plan.fits:
                break
            for key in plan.evict:
                victim_pool, victim = self._instances[key]
                self._evicting.add(key)
                reserved -= victim.spec.config.limits.memory
                reason = f"stopped to make room for {pool.spec.app} (host memory budget {describe(budget)} full)"
                self._spawn_task(self._evict(victim_pool, victim, reason), name=f"evict {key}")
            candidates = [c for c in candidates if c.key not in plan.evict]
            reserved += need
            admitted += 1
        return admitted

    async def _evict(self, pool: Pool, instance: Instance, reason: str) -> None:
        try:
            await self._stop(pool, instance, reason)
        finally:
            self._evicting.discard(instance.id)

    async def stop_instance(self, instance: InstanceId, reason: str) -> None:
        entry = self._instances.get(instance)
        if entry is not None:
            await self._stop(entry[0], entry[1], reason)

    async def scale_to(self, deployment: DeploymentId, count: int, reason: str) -> None:
        pool = self._known(deployment)
        target = clamp_count(pool.spec.config, count)
        if pool.held and target <= floor_count(pool.spec.config):
            return  # drained, or crashed with auto_restart off: only a request or a restart brings it back
        pool.held = False
        live = pool.live()
        if target > len(live):
            wait = pool.backoff_until - time.monotonic()
            if wait > BACKOFF_SLACK:  # crash-looping: the back-off decides when the floor comes back, not demand
                self._restart_later(pool, wait)
                return
            started = [self._start(pool) for _ in range(self._admit(pool, target - len(live)))]
            await asyncio.gather(*(self._wait_ready(i) for i in started))
        elif target < len(live):
            candidates = [(i, i.is_ready(), i.in_flight, i.started_at) for i in live]
            surplus = pick_surplus(candidates, len(live) - target)
            await asyncio.gather(*(self._stop(pool, i, reason) for i in surplus))

    async def restart(self, deployment: DeploymentId) -> None:
        pool = self._known(deployment)
        pool.held = False
        old = pool.live()
        count = max(len(old), pool.floor())
        if count:
            fresh = [self._start(pool) for _ in range(count)]
            outcomes = await asyncio.gather(*(self._wait_ready(i) for i in fresh))
            if not any(isinstance(o, InstanceInfo) for o in outcomes):
                self._event(
                    pool.spec.app,
                    "deployment.restart_failed",
                    f"restart of {deployment} failed: no new instance became ready; the old ones keep serving",
                    deployment=deployment,
                    reasons=[o for o in outcomes if isinstance(o, str)],
                )
                return
            await asyncio.gather(*(self._stop(pool, i, "replaced by a restart") for i in old))
        self._evict_old_zygotes(pool)

    async def drain(self, deployment: DeploymentId) -> None:
        pool = self._pools.get(deployment)
        if pool is None:
            return
        pool.held = True  # no floor until something asks for an instance again
        if pool.restart_timer is not None:
            pool.restart_timer.cancel()
            pool.restart_timer = None
        await asyncio.gather(*(self._stop(pool, i, "drained") for i in pool.live()))

    def instances(self, deployment: DeploymentId | None = None) -> list[InstanceInfo]:
        """Live instances (starting, ready, draining), then up to 5 recently finished ones per
        deployment (stopped, crashed) so their reason can be shown."""
        if deployment is None:
            pools = list(self._pools.values())
        else:
            pools = [self._pools[deployment]] if deployment in self._pools else []
        live = [i.info() for pool in pools for i in pool.instances.values()]
        return live + [info for pool in pools for info in pool.finished]

    def stats(self, deployment: DeploymentId) -> DeploymentStats:
        """Counters; `last_request_at` is wall-clock time (time.time()). Zeros for an unknown deployment."""
        pool = self._pools.get(deployment)
        if pool is None:
            return DeploymentStats(deployment, 0, 0, 0, 0, 0, None)
        return pool.stats()

    async def isolation(self, deployment: DeploymentId | None = None) -> dict[InstanceId, Isolation]:
        pools = [p for p in self._pools.values() if deployment in (None, p.deployment)]
        live = [(InstanceId(i.id), i.pid, p.spec) for p in pools for i in p.live() if i.pid is not None]
        return await read_instances(self.sandbox, live, [p.spec for p in self._pools.values()])

    async def isolation_of_build(
        self, pid: int, argv: Sequence[str], app: AppName, build_dir: Path
    ) -> Isolation | None:
        running = [p.spec for p in self._pools.values()]
        return await read_build_step(self.sandbox, pid, argv, app, build_dir, running)

    async def probe(self, spec: DeploymentSpec, limit_seconds: float) -> ProbeResult:
        tmpdir = self._tmpdir(f"probe-{spec.deployment}-{secrets.token_hex(3)}")
        return await run_probe(spec, limit_seconds, tmpdir, self._logs, self.settings.grace_kill, self.sandbox)

    async def close(self) -> None:
        """Drain and stop every instance and zygote in parallel; leaves no process behind."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.wait([self._sweeper])
        pools = list(self._pools.values())
        for pool in pools:
            pool.cancel_timers()
        await asyncio.gather(*(self._retire_pool(pool) for pool in pools))
        self._pools.clear()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=TIMEOUT_CLOSE_TASKS)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await asyncio.to_thread(self.sandbox.release)
