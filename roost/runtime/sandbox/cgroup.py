"""One cgroup of an instance or a zygote: its limits, who is in it, what it used, how it ended,
and its removal. Two layouts, one surface: v2 (one directory) and v1 (one per controller).

The file operations are small sysfs writes and reads (tens of microseconds each, measured in
bench/sandbox.py), fine on the event loop; `kill` and `remove` wait for processes to die and
belong in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CPU_PERIOD_US = 100_000
TIMEOUT_KILL = 5.0
POLL_KILL = 0.01


@dataclass(frozen=True, slots=True)
class GroupLimits:
    memory: int  # bytes
    cpu: float  # cores
    pids: int


class Cgroup(Protocol):
    """What the runtime does with a group, whatever the layout."""

    name: str

    def procs_files(self) -> list[Path]:
        """The cgroup.procs file(s) a process writes its pid to, to join."""

    def add(self, pid: int) -> None:
        """Move `pid` (all its threads) in. Raises OSError (ESRCH when it is gone)."""

    def pids(self) -> set[int]: ...

    def oom_kills(self) -> int:
        """How many processes the kernel killed here for memory (the cgroup's own counter)."""

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by everything in the group, or None when it cannot be read."""

    def pids_refused(self) -> int:
        """How many forks the pids limit refused here (pids.events `max`), 0 when unknown."""

    def kill(self) -> None:
        """SIGKILL everything in the group and wait until it is empty (blocking: use a thread)."""

    def remove(self) -> None:
        """Kill what is left and remove the group (blocking: use a thread). Never raises."""


def _write(path: Path, value: str) -> None:
    with path.open("w") as handle:
        handle.write(value)


def _read(path: Path) -> str:
    with path.open() as handle:
        return handle.read()


def _keyed(text: str) -> dict[str, int]:
    """`oom_kill 3\\nmax 0` -> {'oom_kill': 3, 'max': 0}."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    return values


def _read_pids(path: Path) -> set[int]:
    try:
        return {int(line) for line in _read(path).split()}
    except (OSError, ValueError):
        return set()


def _pids_events(directory: Path) -> int:
    try:
        return _keyed(_read(directory / "pids.events")).get("max", 0)
    except OSError:
        return 0


def _kill_until_empty(procs: Path, kill_file: Path | None) -> None:
    deadline = time.monotonic() + TIMEOUT_KILL
    if kill_file is not None and kill_file.exists():
        with contextlib.suppress(OSError):
            _write(kill_file, "1")
    while (members := _read_pids(procs)) and time.monotonic() < deadline:
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(POLL_KILL)


def _rmdir(directories: Iterable[Path]) -> None:
    deadline = time.monotonic() + TIMEOUT_KILL
    for directory in directories:
        while True:
            try:
                directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                # EBUSY: an exiting task still counts for a moment
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    break
                time.sleep(POLL_KILL)


class CgroupV2:
    """A v2 group: memory.max with swap off, cpu.max, pids.max; cgroup.kill when the kernel has it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.name = directory.name

    @classmethod
    def create(cls, directory: Path, limits: GroupLimits | None) -> CgroupV2:
        """A new group at `directory`; `limits` None leaves the parent's."""
        directory.mkdir()
        group = cls(directory)
        if limits is None:
            return group
        try:
            _write(directory / "memory.max", str(limits.memory))
            if (directory.parent / "memory.swap.max").exists():  # swap accounting on (the parent is never the root)
                _write(directory / "memory.swap.max", "0")
            _write(directory / "cpu.max", f"{max(1000, round(limits.cpu * CPU_PERIOD_US))} {CPU_PERIOD_US}")
            _write(directory / "pids.max", str(limits.pids))
        except BaseException:
            _rmdir([directory])
            raise
        return group

    def procs_files(self) -> list[Path]:
        return [self.directory / "cgroup.procs"]

    def add(self, pid: int) -> None:
        _write(self.directory / "cgroup.procs", str(pid))

    def pids(self) -> set[int]:
        return _read_pids(self.directory / "cgroup.procs")

    def oom_kills(self) -> int:
        try:
            return _keyed(_read(self.directory / "memory.events")).get("oom_kill", 0)
        except OSError:
            return 0

    def cpu_seconds(self) -> float | None:
        try:
            usage = _keyed(_read(self.directory / "cpu.stat")).get("usage_usec")
        except OSError:
            return None
        return None if usage is None else usage / 1e6

    def pids_refused(self) -> int:
        return _pids_events(self.directory)

    def kill(self) -> None:
        _kill_until_empty(self.directory / "cgroup.procs", self.directory / "cgroup.kill")

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.kill()
        _rmdir([self.directory])


class CgroupV1:
    """A v1 group: one directory per controller (memory, cpu, cpuacct, pids), each joined."""

    def __init__(self, directories: Mapping[str, Path]) -> None:
        self.directories = dict(directories)
        self.name = next(iter(self.directories.values())).name

    @classmethod
    def create(cls, directories: Mapping[str, Path], limits: GroupLimits | None) -> CgroupV1:
        """A new group in each controller; `limits` None leaves the parent's."""
        group = cls(directories)
        made: list[Path] = []
        try:
            for directory in directories.values():
                directory.mkdir()
                made.append(directory)
            if limits is not None:
                group._limit(limits)
        except BaseException:
            _rmdir(made)
            raise
        return group

    def _limit(self, limits: GroupLimits) -> None:
        memory = self.directories.get("memory")
        if memory is not None:
            _write(memory / "memory.limit_in_bytes", str(limits.memory))
            if (memory / "memory.memsw.limit_in_bytes").exists():  # swap accounting on: no swap either
                _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory))
        cpu = self.directories.get("cpu")
        if cpu is not None:
            _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(max(1000, round(limits.cpu * CPU_PERIOD_US))))
        pids = self.directories.get("pids")
        if pids is not None:
            _write(pids / "pids.max", str(limits.pids))

    def procs_files(self) -> list[Path]:
        return [directory / "cgroup.procs" for directory in self.directories.values()]

    def add(self, pid: int) -> None:
        for procs in self.procs_files():
            _write(procs, str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files():
            found |= _read_pids(procs)
        return found

    def oom_kills(self) -> int:
        """The `oom_kill` line of memory.oom_control (Linux 4.13+); on older kernels, 1 when the
        group is under OOM right now (`under_oom`), which is all v1 tells."""
        memory = self.directories.get("memory")
        if memory is None:
            return 0
        try:
            control = _keyed(_read(memory / "memory.oom_control"))
        except OSError:
            return 0
        if "oom_kill" in control:
            return control["oom_kill"]
        return control.get("under_oom", 0)

    def cpu_seconds(self) -> float | None:
        for controller in ("cpuacct", "cpu"):
            directory = self.directories.get(controller)
            if directory is not None and (directory / "cpuacct.usage").exists():
                with contextlib.suppress(OSError, ValueError):
                    return int(_read(directory / "cpuacct.usage")) / 1e9
        return None

    def pids_refused(self) -> int:
        pids = self.directories.get("pids")
        return 0 if pids is None else _pids_events(pids)

    def kill(self) -> None:
        for procs in self.procs_files():
            _kill_until_empty(procs, None)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.kill()
        _rmdir(self.directories.values())
