"""Limits enforced by watching, once per sweep: the CPU-time budget of each ready instance
(recycled past it, with an event saying why) and, on hosts without cgroups, its memory (RSS
polled with psutil; over the limit, the instance is killed and said to be).

Reads are small: one sysfs file per instance with cgroups (tens of microseconds), a few /proc
files per process of the instance without; both on the loop, once a second.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable

from roost.runtime.instance import Instance
from roost.runtime.keeper import InstanceKeeper
from roost.runtime.notify import Notifier
from roost.runtime.pool import Pool
from roost.runtime.sandbox import Sandbox, megabytes, over_budget, over_memory, tree_cpu, tree_rss
from roost.runtime.upkeep import Upkeep


class LimitWatcher:
    """Called by the runtime's sweep; recycles through the instance keeper."""

    def __init__(self, sandbox: Sandbox, notifier: Notifier, upkeep: Upkeep, keeper: InstanceKeeper) -> None:
        self.sandbox = sandbox
        self._notifier = notifier
        self._upkeep = upkeep
        self._keeper = keeper

    def police(self, pools: Iterable[Pool], now: float) -> None:
        """Check every ready instance against its CPU budget (and memory, without cgroups)."""
        if not self.sandbox.settings.enabled:
            return
        for pool in list(pools):
            for instance in pool.ready():
                if instance.cgroup is None and self._over_memory(instance):
                    continue
                self._check_budget(pool, instance, now)

    def _check_budget(self, pool: Pool, instance: Instance, now: float) -> None:
        limits = instance.spec.config.limits
        window = self.sandbox.settings.cpu_window
        budget = limits.cpu_budget_seconds(window)
        if budget <= 0:
            return
        used = self._cpu_seconds(instance)
        if used is None:
            return
        instance.usage.add(now, used)
        over = over_budget(instance.usage, now, window, budget)
        if over is None:
            return
        reason = (
            f"used {over:.1f}s of CPU in {window:g}s, over its budget of {budget:g}s "
            f"(limits.cpu_budget; limits.cpu = {limits.cpu:g})"
        )
        self._notifier.event(
            instance.spec.app,
            "instance.cpu_budget",
            f"instance {instance.id} {reason}; recycling it",
            deployment=pool.deployment,
            instance=instance.id,
            cpu_seconds=over,
            budget=budget,
        )
        if self._keeper.begin_stop(pool, instance, reason):
            self._upkeep.keep_task(self._keeper.complete_stop(instance), name=f"recycle {instance.id}")

    def _cpu_seconds(self, instance: Instance) -> float | None:
        if instance.cgroup is not None:
            return instance.cgroup.cpu_seconds()
        pid = instance.pid
        return tree_cpu(pid) if pid is not None else None

    def _over_memory(self, instance: Instance) -> bool:
        """Without cgroups: kill the instance when its processes' RSS passed the limit."""
        pid = instance.pid
        if pid is None or instance.child is None:
            return False
        rss = tree_rss(pid)
        limit = instance.spec.config.limits.memory
        if rss is None or not over_memory(rss, limit):
            return False
        # ready -> (crashed): killed for memory; the crash names the limit
        instance.memory_seen = rss
        instance.output.log(f"roost: RSS {megabytes(rss)} is over the memory limit of {megabytes(limit)}; killing it")
        instance.child.signal(signal.SIGKILL)
        return True
