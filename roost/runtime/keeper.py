"""Instances from spawn to reap: launch (fork or fresh), ready, drain, stop, and what a crash
means (back-off, crash-looping, a restart to keep a deployment's floor).

Each instance's life is one task, `_run`, which alone awaits its process's end;
stopping only drains and signals, then waits for that task to record the end.
A dying process is state, not an exception: the reason is recorded in words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from functools import partial
from pathlib import Path

from roost.applog import LogBook
from roost.model import InstanceState, new_instance_id
from roost.runtime.backoff import BACKOFF_SLACK, is_crash_looping
from roost.runtime.environ import make_tmpdir
from roost.runtime.healthcheck import wait_healthy
from roost.runtime.instance import Instance
from roost.runtime.launch import StartFailed, launch_command, launch_forked, launch_fresh, launch_process
from roost.runtime.notify import Notifier
from roost.runtime.output import Output
from roost.runtime.pool import Pool
from roost.runtime.process import ExitStatus, terminate
from roost.runtime.protocol import InstanceInfo, StartKind
from roost.runtime.sandbox import Cgroup, Confinement, Sandbox, megabytes
from roost.runtime.tuning import RuntimeSettings
from roost.runtime.upkeep import Upkeep
from roost.runtime.zygote import ForkFailed, Zygote
from roost.runtime.zygote_keeper import ZygoteKeeper

log = logging.getLogger("roost.runtime")


class InstanceKeeper:
    """Every instance of every pool, from `start` to its recorded end; forks from `zygotes`."""

    def __init__(
        self,
        settings: RuntimeSettings,
        sandbox: Sandbox,
        logs: LogBook,
        notifier: Notifier,
        upkeep: Upkeep,
        zygotes: ZygoteKeeper,
    ) -> None:
        self.settings = settings
        self.sandbox = sandbox
        self._logs = logs
        self._notifier = notifier
        self._upkeep = upkeep
        self._zygotes = zygotes
        self.index: dict[str, tuple[Pool, Instance]] = {}  # live instances by id, with their pool

    # -- spawn and launch ----------------------------------------------------------------------------------------------

    def start(self, pool: Pool, restarts: int = 0) -> Instance:
        """A new instance in `starting`; its task launches it. Synchronous, so it counts at once."""
        spec = pool.spec
        instance_id = new_instance_id()
        source = f"{spec.process.name}/{instance_id}" if spec.process is not None else instance_id
        output = Output(lambda line: self._logs.write(spec.app, spec.deployment, source, line))
        instance = Instance(spec, instance_id, self._upkeep.tmpdir(instance_id), output, restarts)
        if restarts:
            instance.reason = f"restart {restarts} after: {pool.last_failure}"
        instance.on_spawned = lambda: self._spawned(instance)
        pool.instances[instance_id] = instance
        self.index[instance_id] = (pool, instance)
        self._notifier.changed(instance)
        self._upkeep.keep_task(self._run(pool, instance), name=f"instance {instance_id}")
        return instance

    async def _run(self, pool: Pool, instance: Instance) -> None:
        """The instance's whole life: launch, ready, wait for its end, record it."""
        launching = instance.launching = asyncio.ensure_future(self._launch(pool, instance))
        try:
            await asyncio.wait([launching])
        except asyncio.CancelledError:
            launching.cancel()
            self._kill(instance)
            raise
        failure = self._launch_failure(launching)
        instance.spawned.set()
        status: ExitStatus | None = None
        try:
            if failure is None and instance.child is not None:
                if instance.state is InstanceState.STARTING:
                    self._mark_ready(pool, instance)
                status = await instance.child.exited
            elif instance.child is not None:
                status = await terminate(instance.child, self.settings.grace_kill)
            await instance.output.finish()
        except asyncio.CancelledError:
            self._kill(instance)
            instance.output.close()
            raise
        self._finish(pool, instance, status, failure)

    async def _launch(self, pool: Pool, instance: Instance) -> None:
        """Spawn or fork it, then, with a `[check]`, wait until it passes: only then is it ready."""
        deadline = time.monotonic() + self.settings.timeout_start
        await self._spawn(pool, instance, deadline)
        check = instance.spec.config.check
        if check is None:
            return
        outcome = await wait_healthy(instance.host, instance.port, check, instance.child, deadline)
        if not outcome.ok:
            raise StartFailed(f"failed its health check: {outcome.detail}")

    async def _spawn(self, pool: Pool, instance: Instance, deadline: float) -> None:
        make_tmpdir(instance.tmpdir)
        sandbox = self.sandbox
        await sandbox.prepare(instance.spec)
        if instance.spec.process is not None:
            await launch_process(instance, self._inside_tmp(instance, False), self._confine(instance))
            return
        if instance.spec.config.command:
            await launch_command(
                instance, deadline, self._inside_tmp(instance, False), self._confine(instance), sandbox.ports
            )
            return
        warm = pool.zygote is not None and pool.zygote.is_ready()  # else this start waits for an import
        zygote = await self._zygotes.zygote_for(pool, deadline)
        if zygote is not None and zygote.spec == instance.spec:
            confine = partial(self._confine_forked, zygote, instance) if sandbox.has_cgroups() else None
            try:
                await launch_forked(instance, zygote, self._inside_tmp(instance, True), confine, warm, sandbox.ports)
                return
            except ForkFailed as exc:
                instance.output.log(f"roost: could not fork from the zygote ({exc}); starting fresh")
                self._upkeep.remove_cgroup(instance.cgroup)
                instance.cgroup = None
        await launch_fresh(
            instance, deadline, self._inside_tmp(instance, False), self._confine(instance), sandbox.ports
        )

    async def _confine_forked(self, zygote: Zygote, instance: Instance, pid: int) -> Cgroup | None:
        """The forked child's cgroup: the one its spare already sits in, else a new one it is
        moved into now (in a thread: a move waits for an RCU grace period). Raises OSError when
        it cannot be moved; None when no cgroup can be made (it runs without, as logged)."""
        group = await self._zygotes.take_spare_group(zygote, pid)
        if group is not None:
            return group
        group = self.sandbox.cgroup(instance.id, instance.spec.config.limits)
        if group is not None:
            try:
                await asyncio.to_thread(group.add, pid)
            except OSError:
                self._upkeep.remove_cgroup(group)
                raise
        return group

    def _confine(self, instance: Instance) -> Confinement | None:
        confinement = self.sandbox.confine(instance.spec, instance.id, instance.tmpdir)
        instance.cgroup = confinement.cgroup if confinement is not None else None
        return confinement

    def _inside_tmp(self, instance: Instance, forked: bool) -> Path:
        return self.sandbox.tmpdir(instance.tmpdir, instance.id, forked)

    def _launch_failure(self, launching: asyncio.Future[None]) -> str | None:
        if launching.cancelled():
            return "stopped before it started"
        exc = launching.exception()
        if exc is None:
            return None
        if isinstance(exc, StartFailed):
            return str(exc)
        log.error("could not launch an instance", exc_info=exc)
        return f"could not start: {type(exc).__name__}: {exc}"

    def _spawned(self, instance: Instance) -> None:
        if instance.start_kind is StartKind.FORK:
            how = "forked from the zygote"
        elif instance.forked:
            how = "forked from a zygote that had to import the app first (cold)"
        else:
            how = "started fresh"
        self._notifier.event(
            instance.spec.app,
            "instance.started",
            f"instance {instance.id} of {instance.spec.deployment} {how} (pid {instance.pid})",
            deployment=instance.spec.deployment,
            instance=instance.id,
            pid=instance.pid,
            restarts=instance.restarts,  # > 0: a replacement after a crash (for the restart metric)
            start_kind=instance.start_kind.value,
        )
        self._notifier.changed(instance)  # the pid, for recovery after a daemon crash

    def _kill(self, instance: Instance) -> None:
        if instance.child is not None:
            instance.child.signal(signal.SIGKILL)

    # -- ready and finished --------------------------------------------------------------------------------------------

    def _mark_ready(self, pool: Pool, instance: Instance) -> None:
        # starting -> ready: forked, said "ready" (fresh) or accepted a connection (command),
        # and passed the app's [check] when it has one
        instance.move(InstanceState.READY)
        instance.reason = ""
        instance.ready_at = instance.last_used = time.monotonic()
        pool.failing_to_start = False
        seconds = instance.ready_at - instance.spawned_at
        where = f"on {instance.host}:{instance.port}" if instance.spec.process is None else "(up)"
        self._notifier.event(
            instance.spec.app,
            "instance.ready",
            f"{label(instance)} ready {where} in {seconds:.3f}s ({instance.start_kind.value})",
            deployment=pool.deployment,
            instance=instance.id,
            seconds=round(seconds, 4),
            start_kind=instance.start_kind.value,
            process=instance.info().process,
        )
        self._notifier.changed(instance)
        instance.resolve_waiters(instance.info())
        self.arm_idle(pool, instance)
        self._notifier.capacity_changed(pool.spec.deployment)

    def _finish(self, pool: Pool, instance: Instance, status: ExitStatus | None, failure: str | None) -> None:
        instance.cancel_idle_timer()
        pool.instances.pop(instance.id, None)
        self.index.pop(instance.id, None)
        if instance.state is InstanceState.DRAINING:
            # draining -> stopped: we asked it to go
            instance.move(InstanceState.STOPPED, instance.stop_reason or "stopped")
            self._notifier.event(
                instance.spec.app,
                "instance.stopped",
                f"instance {instance.id} stopped ({instance.reason})",
                deployment=pool.deployment,
                instance=instance.id,
            )
        else:
            self._crashed(pool, instance, status, failure)
        pool.finished.append(instance.info())
        instance.resolve_waiters(instance.reason)
        instance.finished.set()
        self._notifier.changed(instance)
        self._upkeep.remove_tmpdir(instance.tmpdir)
        self._upkeep.remove_cgroup(instance.cgroup)
        self._zygotes.evict_old(pool)

    def _crashed(self, pool: Pool, instance: Instance, status: ExitStatus | None, failure: str | None) -> None:
        # starting/ready -> crashed: it ended without being asked
        was_ready = instance.ready_at is not None
        what = failure or (status.describe() if status is not None else "ended")
        memory = out_of_memory(instance)
        if memory:
            what = f"{memory} ({what})"
        output = last_words(instance, bool(memory))
        lines = output[-3:]
        tail = f": {' | '.join(lines)}" if lines else ""
        pool.failing_to_start = not was_ready
        reason = self.count_failure(pool, instance, f"{what}{tail}")
        instance.move(InstanceState.CRASHED, reason)
        self._notifier.event(
            instance.spec.app,
            "instance.crashed",
            f"{label(instance)} {what}{tail}",
            deployment=pool.deployment,
            instance=instance.id,
            status=status.describe() if status is not None else what,
            output=output,
            streak=pool.streak,
            out_of_memory=bool(memory),
            process=instance.info().process,
        )
        if not was_ready and pool.spec.process is None:  # edge waiters wait for web instances only
            self._notifier.start_failed(pool.spec.deployment, f"instance {instance.id} {reason}")
        if pool.spec.config.auto_restart:
            self.keep_floor(pool, restarts=pool.streak)
            return
        pool.held = True  # no floor until something asks for an instance again
        self._notifier.event(
            instance.spec.app,
            "instance.not_restarted",
            f"instance {instance.id} not restarted: auto_restart is off "
            f"(`roost restart {instance.spec.app}` or a request starts one)",
            deployment=pool.deployment,
            instance=instance.id,
        )

    def count_failure(self, pool: Pool, instance: Instance, what: str) -> str:
        """One more failure in `pool`'s streak (a crash, or a restart for failing the health
        check): the next start waits out the back-off. Returns `what`, said to be crash-looping
        once the streak is long enough."""
        now = time.monotonic()
        pool.crashes += 1
        pool.streak = self.settings.backoff.next_streak(pool.streak, instance.healthy_seconds(now))
        pool.backoff_until = now + self.settings.backoff.delay(pool.streak)
        if is_crash_looping(pool.streak):
            what = f"crash-looping ({pool.streak} crashes in a row): {what}"
        pool.last_failure = what
        return what

    # -- keeping the floor: a service's instances, restarted after a back-off ------------------------------------------

    def keep_floor(self, pool: Pool, restarts: int = 0) -> None:
        if self._upkeep.closing or pool.retiring:
            return
        missing = pool.floor() - len(pool.live())
        if missing <= 0:
            return
        wait = pool.backoff_until - time.monotonic()
        if wait > BACKOFF_SLACK:  # a timer may fire a hair early: that is not another back-off
            self.restart_later(pool, wait)
            return
        for _ in range(missing):
            self.start(pool, restarts=restarts)

    def restart_later(self, pool: Pool, delay: float) -> None:
        if pool.restart_timer is not None:
            return
        looping = ", crash-looping" if is_crash_looping(pool.streak) else ""
        what = f"a {pool.spec.process.name} instance" if pool.spec.process is not None else "an instance"
        self._notifier.event(
            pool.spec.app,
            "instance.backoff",
            f"restarting {what} of {pool.deployment} in {delay:.1f}s "
            f"({pool.streak} crash(es) in a row{looping}); last: {pool.last_failure}",
            deployment=pool.deployment,
            delay=round(delay, 3),
            streak=pool.streak,
            process=pool.spec.process.name if pool.spec.process is not None else "",
        )
        pool.restart_timer = asyncio.get_running_loop().call_later(delay, self._restart_due, pool)

    def _restart_due(self, pool: Pool) -> None:
        pool.restart_timer = None
        self.keep_floor(pool, restarts=pool.streak)

    # -- idle, drain, stop ---------------------------------------------------------------------------------------------

    def arm_idle(self, pool: Pool, instance: Instance) -> None:
        if instance.is_ready() and instance.in_flight == 0:
            instance.cancel_idle_timer()
            timeout = instance.spec.config.scale.idle_timeout
            instance.idle_timer = asyncio.get_running_loop().call_later(timeout, self._on_idle, pool, instance)

    def _on_idle(self, pool: Pool, instance: Instance) -> None:
        instance.idle_timer = None
        if instance.is_ready() and instance.in_flight == 0 and len(pool.live()) > pool.floor():
            timeout = instance.spec.config.scale.idle_timeout
            if self.begin_stop(pool, instance, f"idle for {timeout:g}s"):
                self._upkeep.keep_task(self.complete_stop(instance), name=f"stop {instance.id}")

    async def stop(self, pool: Pool, instance: Instance, reason: str) -> None:
        """Drain (no new requests, in-flight finish within the grace), TERM, grace, KILL."""
        if self.begin_stop(pool, instance, reason):
            await self.complete_stop(instance)
        await instance.finished.wait()

    def begin_stop(self, pool: Pool, instance: Instance, reason: str) -> bool:
        """Synchronously out of routing; False if it was already on its way out."""
        if not instance.is_live():
            return False
        # starting/ready -> draining: no new requests from now on
        instance.stop_reason = reason
        instance.move(InstanceState.DRAINING, f"draining: {reason}")
        instance.cancel_idle_timer()
        self._notifier.event(
            instance.spec.app,
            "instance.draining",
            f"instance {instance.id} draining ({reason}), {instance.in_flight} request(s) in flight",
            deployment=pool.deployment,
            instance=instance.id,
        )
        self._notifier.changed(instance)
        if not instance.spawned.is_set() and instance.launching is not None:
            instance.launching.cancel()
        self.keep_floor(pool)  # recycling: the replacement starts while this one drains
        return True

    async def complete_stop(self, instance: Instance) -> None:
        if instance.in_flight:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.grace_drain):
                    await instance.idle.wait()
        await instance.spawned.wait()
        if instance.child is not None and instance.child.is_alive():
            process = instance.spec.process  # a worker's grace is its own: time to finish the current job
            await terminate(instance.child, process.grace if process is not None else self.settings.grace_kill)
        await instance.finished.wait()

    async def wait_ready(self, instance: Instance) -> InstanceInfo | str:
        """The instance's info once ready, or the reason it never was."""
        if instance.is_ready():
            return instance.info()
        if not instance.is_live():
            return instance.reason or "stopped"
        waiter: asyncio.Future[InstanceInfo | str] = asyncio.get_running_loop().create_future()
        instance.ready_waiters.append(waiter)
        return await waiter


def label(instance: Instance) -> str:
    """ "instance i-ab12cd", or "worker instance i-ab12cd" for a process type's."""
    process = instance.spec.process
    return f"{process.name} instance {instance.id}" if process is not None else f"instance {instance.id}"


def last_words(instance: Instance, killed_for_memory: bool) -> list[str]:
    """The output a crash quotes. A process that exits on its own says why last (a traceback);
    one the kernel or the poll killed for memory says nothing, so only what it wrote since it
    last got busy is its own story: an older request's traceback is not."""
    return instance.output.since_mark() if killed_for_memory else list(instance.output.tail)


def out_of_memory(instance: Instance) -> str:
    """ "exceeded its memory limit of 128 MB" when the cgroup's OOM counter rose (or polling
    caught it over the limit without cgroups), else ""."""
    limit = instance.spec.config.limits.memory
    if instance.memory_seen:
        seen = instance.memory_seen // (1024 * 1024)
        return f"exceeded its memory limit of {megabytes(limit)} (RSS {seen} MB when polled)"
    if instance.cgroup is not None and instance.cgroup.oom_kills() > 0:  # a small sysfs read
        return f"exceeded its memory limit of {megabytes(limit)}"
    return ""
