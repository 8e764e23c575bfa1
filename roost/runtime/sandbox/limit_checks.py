"""Watching instances against what cgroups cannot enforce alone: the CPU-time budget per
window (the quota only slows a loop down; the budget recycles it), and, without cgroups,
the memory limit by polling RSS (RLIMIT_AS would count reserved address space, which
allocators reserve generously, so it is not used).

`over_budget` and `over_memory` decide purely from samples; `CpuSamples` keeps them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import psutil


@dataclass(slots=True)
class CpuSamples:
    """CPU-time samples of one instance: (monotonic time, CPU seconds used so far)."""

    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=64))

    def add(self, now: float, cpu_seconds: float) -> None:
        self.samples.append((now, cpu_seconds))


def over_budget(usage: CpuSamples, now: float, window: float, budget: float) -> float | None:
    """The CPU seconds used over the last `window` when they exceed `budget`, else None. Needs
    samples spanning (nearly) the whole window, so a start-up burst is judged fairly.

    >>> u = CpuSamples(); u.add(0.0, 1.0); u.add(10.0, 6.5)
    >>> over_budget(u, 10.0, 10.0, 4.0)
    5.5
    >>> over_budget(u, 10.0, 10.0, 6.0) is None
    True
    """
    if budget <= 0 or not usage.samples:
        return None
    latest_at, latest = usage.samples[-1]
    oldest = [(t, c) for t, c in usage.samples if now - t <= window + 0.5]
    if not oldest or latest_at - oldest[0][0] < window * 0.9:
        return None
    used = latest - oldest[0][1]
    return round(used, 3) if used > budget else None


def megabytes(size: int) -> str:
    """How limits are named to people: 134217728 -> '128 MB'; 1.5 GiB -> '1536 MB'."""
    return f"{size / (1024 * 1024):g} MB"


def over_memory(rss: int, limit: int) -> bool:
    return rss > limit


def _tree(pid: int) -> list[psutil.Process] | None:
    """`pid` and all its descendants; None when it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return None


def tree_rss(pid: int) -> int | None:
    """RSS of `pid` and all its descendants, in bytes; None when it is gone (reads /proc)."""
    processes = _tree(pid)
    if processes is None:
        return None
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def tree_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of `pid` and its live descendants; None when it is gone."""
    processes = _tree(pid)
    if processes is None:
        return None
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total
