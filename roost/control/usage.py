"""What an instance costs now: memory and CPU, read from /proc with psutil."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from roost.model import InstanceState

LIVE = (InstanceState.STARTING, InstanceState.READY, InstanceState.DRAINING)
CPU_SAMPLE_SECONDS = 0.1


@dataclass(frozen=True, slots=True)
class Usage:
    """One process now: proportional memory (shared pages split among sharers, so forks from
    one zygote add up honestly) and CPU as a percentage of one core."""

    memory: int
    cpu: float


def measure(pids: Iterable[int], sample: float = CPU_SAMPLE_SECONDS) -> dict[int, Usage]:
    """PSS and CPU% of each pid that still exists. Blocking (reads /proc, sleeps `sample`)."""
    processes: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            process = psutil.Process(pid)
            process.cpu_percent(None)
        except psutil.Error:
            continue
        processes[pid] = process
    if processes and sample > 0:
        time.sleep(sample)
    usage: dict[int, Usage] = {}
    for pid, process in processes.items():
        try:
            with process.oneshot():
                memory = int(getattr(process.memory_full_info(), "pss", 0))
                usage[pid] = Usage(memory, process.cpu_percent(None))
        except psutil.Error:
            continue
    return usage
