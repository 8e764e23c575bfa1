"""What an instance costs now: memory and CPU, read from /proc with psutil."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from roost.model import InstanceState
from roost.runtime.protocol import InstanceInfo

LIVE = (InstanceState.STARTING, InstanceState.READY, InstanceState.DRAINING)
CPU_SAMPLE_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class Usage:
    """One process now: proportional memory (shared pages split among sharers, so forks from
    one zygote add up honestly) and CPU as a percentage of one core."""

    memory: int
    cpu: float


def measure(pids: Iterable[int], sample: float = CPU_SAMPLE_SECONDS) -> dict[int, Usage]:
    """PSS and CPU% of each pid that still exists, its descendants included (a command app may
    run under a shell, a server may fork workers). Blocking (reads /proc, sleeps `sample`)."""
    trees: dict[int, list[psutil.Process]] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for process in tree:
            with contextlib.suppress(psutil.Error):
                process.cpu_percent(None)
        trees[pid] = tree
    if trees and sample > 0:
        time.sleep(sample)
    usage: dict[int, Usage] = {}
    for pid, tree in trees.items():
        memory, cpu = 0, 0.0
        for process in tree:
            with contextlib.suppress(psutil.Error), process.oneshot():
                memory += int(getattr(process.memory_full_info(), "pss", 0))
                cpu += process.cpu_percent(None)
        usage[pid] = Usage(memory, cpu)
    return usage


def app_memory(instances: Iterable[InstanceInfo]) -> dict[str, int]:
    """Memory (PSS) of each app's live instances, summed; apps with none are absent. Blocking:
    run it in a thread."""
    live = [i for i in instances if i.state in LIVE and i.pid is not None]
    usage = measure([i.pid for i in live if i.pid is not None], 0)
    memory: dict[str, int] = {}
    for info in live:
        if info.pid in usage:
            memory[info.app] = memory.get(info.app, 0) + usage[info.pid].memory
    return memory
