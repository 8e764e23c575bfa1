"""Keeping each preload deployment's zygote: spawn it on demand, replace it when it dies
(with back-off; instances start fresh meanwhile), evict it when idle.

A zygote is evicted only when no fork happened for `zygote_idle` seconds AND no
instance it forked is alive: it is their parent and the only one who can tell how
they ended. A zygote of an earlier spec lingers, forking nothing, until its
instances are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Iterable

from roost.applog import LogBook
from roost.runtime.backoff import is_crash_looping
from roost.runtime.environ import make_tmpdir
from roost.runtime.notify import Notifier
from roost.runtime.pool import Pool
from roost.runtime.protocol import DeploymentSpec
from roost.runtime.runner import EXIT_CANNOT_PRELOAD
from roost.runtime.sandbox import Cgroup, Sandbox, megabytes
from roost.runtime.spawn import SpawnFailed
from roost.runtime.tuning import RuntimeSettings
from roost.runtime.upkeep import Upkeep
from roost.runtime.zygote import Zygote, ZygoteState


class ZygoteKeeper:
    """The zygotes of every pool: the instance keeper asks `zygote_for`; the runtime starts,
    retires and evicts them."""

    def __init__(
        self, settings: RuntimeSettings, sandbox: Sandbox, logs: LogBook, notifier: Notifier, upkeep: Upkeep
    ) -> None:
        self.settings = settings
        self.sandbox = sandbox
        self._logs = logs
        self._notifier = notifier
        self._upkeep = upkeep

    async def zygote_for(self, pool: Pool, deadline: float) -> Zygote | None:
        """The zygote to fork from, once ready; None means "start fresh"."""
        if not pool.wants_zygote() or self._upkeep.closing or pool.retiring:
            return None
        zygote = pool.zygote
        if zygote is None:
            if pool.zygote_timer is not None:
                return None  # it died; its replacement is due after a back-off
            zygote = self.start(pool)  # never started or evicted: this start pays the import once
        if await zygote.wait_ready(max(0.0, deadline - time.monotonic())):
            return zygote
        return None

    def start(self, pool: Pool) -> Zygote:
        spec = pool.spec
        zygote = Zygote(
            spec,
            self._upkeep.tmpdir(f"zygote-{spec.deployment}-{secrets.token_hex(3)}"),  # a replacement never shares it
            lambda line: self._logs.write(spec.app, spec.deployment, "zygote", line),
        )
        zygote.on_gone = lambda gone: self._gone(pool, gone)
        zygote.on_spare = lambda pid, alive: self._spare_changed(zygote, pid, alive)
        pool.zygote = zygote
        self._upkeep.keep_task(self._run(pool, zygote), name=f"zygote {spec.deployment}")
        return zygote

    async def _run(self, pool: Pool, zygote: Zygote) -> None:
        spec = pool.spec
        try:
            await self.sandbox.prepare(spec)
            make_tmpdir(zygote.tmpdir)
            name = zygote.tmpdir.name  # zygote-<deployment>-<random>: its cgroup's name too
            confinement = self.sandbox.confine(spec, name, zygote.tmpdir)
            await zygote.spawn(confinement, self.sandbox.tmpdir(zygote.tmpdir, name, forked=False))
        except SpawnFailed as exc:
            self._upkeep.remove_cgroup(zygote.cgroup)
            if pool.zygote is zygote:
                pool.zygote = None
            self._notifier.event(spec.app, "zygote.died", f"zygote of {spec.deployment} could not start: {exc}")
            return
        if await zygote.wait_ready(self.settings.timeout_start):
            assert zygote.ready_at is not None  # noqa: S101 - set with the ready state
            seconds = zygote.ready_at - zygote.spawned_at
            self._notifier.event(
                spec.app,
                "zygote.started",
                f"zygote of {spec.deployment} ready in {seconds:.2f}s (pid {zygote.pid}, {zygote.kind})",
                deployment=spec.deployment,
                pid=zygote.pid,
                seconds=round(seconds, 3),
            )
        elif zygote.state is ZygoteState.STARTING:
            zygote.output.tail.append(f"(did not become ready within {self.settings.timeout_start:g}s)")
            await zygote.stop(self.settings.grace_kill)
            self._gone(pool, zygote, forced=True)

    def _gone(self, pool: Pool, zygote: Zygote, forced: bool = False) -> None:
        """A zygote's process ended: evicted or retired (nothing to do), else it died."""
        self._drop(pool, zygote)
        if (zygote.stopping and not forced) or self._upkeep.closing or pool.retiring:
            return
        status = zygote.status.describe() if zygote.status else "ended"
        if zygote.cgroup is not None and zygote.cgroup.oom_kills() > 0:
            status = f"exceeded its memory limit of {megabytes(pool.spec.config.limits.memory)} ({status})"
        output = list(zygote.output.tail)
        if zygote.status is not None and zygote.status.code == EXIT_CANNOT_PRELOAD:
            pool.preload_refused = True
            message = f"zygote of {pool.deployment} refused to preload the app; instances start fresh"
            self._notifier.event(pool.spec.app, "zygote.died", f"{message}: {' | '.join(output[-1:])}", output=output)
            return
        healthy = 0.0 if zygote.ready_at is None else time.monotonic() - zygote.ready_at
        pool.zygote_streak = self.settings.backoff.next_streak(pool.zygote_streak, healthy)
        delay = self.settings.backoff.delay(pool.zygote_streak)
        last = f": {output[-1]}" if output else ""
        looping = " (crash-looping)" if is_crash_looping(pool.zygote_streak) else ""
        self._notifier.event(
            pool.spec.app,
            "zygote.died",
            f"zygote of {pool.deployment} {status}{last}; instances start fresh until it is replaced "
            f"in {delay:g}s{looping}",
            deployment=pool.deployment,
            status=status,
            output=output,
            retry_in=delay,
        )
        loop = asyncio.get_running_loop()
        pool.zygote_timer = loop.call_later(delay, self._replace, pool)

    # -- spares: a cgroup ready before the request --------------------------------------------------------------

    def _spare_changed(self, zygote: Zygote, pid: int, alive: bool) -> None:
        """The zygote forked a spare (move it into a cgroup of its own now, in a thread: a cgroup
        move waits for an RCU grace period, ~10 ms, which must not fall on a request's path nor
        block the loop), or a spare died unused (its cgroup goes)."""
        if alive and self.sandbox.has_cgroups():
            zygote.spare_groups[pid] = asyncio.ensure_future(asyncio.to_thread(self._spare_group, zygote.spec, pid))
        elif not alive:
            self._discard_spare_group(zygote.spare_groups.pop(pid, None))

    def _spare_group(self, spec: DeploymentSpec, pid: int) -> Cgroup | None:
        """A new cgroup with the deployment's limits, holding `pid`; None if it cannot be had. Blocking."""
        group = self.sandbox.cgroup(f"spare-{secrets.token_hex(5)}", spec.config.limits)
        if group is None:
            return None
        try:
            group.add(pid)
        except OSError:
            group.remove()
            return None
        return group

    def _discard_spare_group(self, making: asyncio.Future[Cgroup | None] | None) -> None:
        if making is not None:
            self._upkeep.keep_task(self._remove_spare_group(making), name="remove a spare's cgroup")

    async def _remove_spare_group(self, making: asyncio.Future[Cgroup | None]) -> None:
        with contextlib.suppress(Exception):
            group = await making
            if group is not None:
                await asyncio.to_thread(group.remove)

    async def take_spare_group(self, zygote: Zygote, pid: int) -> Cgroup | None:
        """The cgroup made ahead for the spare that just became instance `pid`, if it was one."""
        making = zygote.spare_groups.pop(pid, None)
        if making is None:
            return None
        try:
            return await making
        except Exception:  # noqa: BLE001 - then the instance gets a cgroup the slow way
            return None

    def _drop(self, pool: Pool, zygote: Zygote) -> None:
        for making in zygote.spare_groups.values():
            self._discard_spare_group(making)
        zygote.spare_groups.clear()
        if pool.zygote is zygote:
            pool.zygote = None
        if zygote in pool.old_zygotes:
            pool.old_zygotes.remove(zygote)
        self._upkeep.remove_tmpdir(zygote.tmpdir)
        self._upkeep.remove_cgroup(zygote.cgroup)
        zygote.cgroup = None

    def _replace(self, pool: Pool) -> None:
        pool.zygote_timer = None
        if pool.zygote is None and pool.wants_zygote() and not (self._upkeep.closing or pool.retiring):
            self.start(pool)

    def retire(self, pool: Pool) -> None:
        """The spec changed: the current zygote forks no more, and goes once its instances are gone."""
        if pool.zygote is not None:
            pool.old_zygotes.append(pool.zygote)
            pool.zygote = None
        if pool.zygote_timer is not None:
            pool.zygote_timer.cancel()
            pool.zygote_timer = None
        pool.zygote_streak = 0
        self.evict_old(pool)

    def evict_old(self, pool: Pool) -> None:
        for zygote in list(pool.old_zygotes):
            if zygote.live_children() == 0 and not zygote.stopping:
                zygote.stopping = True
                self._upkeep.keep_task(zygote.stop(self.settings.grace_kill), name=f"stop old zygote {zygote.pid}")

    def evict_idle(self, pools: Iterable[Pool], now: float) -> None:
        for pool in list(pools):
            self.evict_old(pool)
            zygote = pool.zygote
            if zygote is None or not zygote.is_ready() or zygote.live_children():
                continue
            idle = now - zygote.last_fork
            if idle >= self.settings.zygote_idle:
                pool.zygote = None
                zygote.stopping = True
                self._notifier.event(
                    pool.spec.app,
                    "zygote.evicted",
                    f"zygote of {pool.deployment} evicted after {idle:.0f}s without a fork; "
                    "the next instance pays the full import",
                    deployment=pool.deployment,
                )
                self._upkeep.keep_task(zygote.stop(self.settings.grace_kill), name=f"evict zygote {zygote.pid}")

    async def stop_all(self, pool: Pool) -> None:
        zygotes = [z for z in [pool.zygote, *pool.old_zygotes] if z is not None]
        pool.zygote = None
        if pool.zygote_timer is not None:
            pool.zygote_timer.cancel()
            pool.zygote_timer = None
        await asyncio.gather(*(z.stop(self.settings.grace_kill) for z in zygotes))
