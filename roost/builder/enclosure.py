"""Where build subprocesses run, so that the next `roost serve` after a crash finds and kills every
one of them before it removes half-built folders. Never decides what to build or when.

Two marks, both set before the build command exists: `ROOST_BUILD=<home id>` in the environment
(inherited by all it starts, read back from /proc/<pid>/environ), and, where the host has
cgroups, the builds' own group, joined by `enter.py` before it executes the command (the runtime
sweeps that group with its instances' at start). Killing is blocking (/proc reads): use a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MARKER = "ROOST_BUILD"
ENTER = Path(__file__).with_name("enter.py")
PROC = Path("/proc")
TIMEOUT_KILL = 5.0
POLL_KILL = 0.02


def home_id(home: Path) -> str:
    """The value of ROOST_BUILD for builds of `home`: two homes never kill each other's builds."""
    return hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Enclosure:
    """How one home's build subprocesses are marked.

    Example::

        enclosure = Enclosure(home_id(home), ("/sys/fs/cgroup/roost-1a2b/builds/cgroup.procs",))
        argv = enclosure.wrap(["uv", "pip", "install", "flask"])  # joins the group, then runs uv
        env = {**env, **enclosure.environ()}
    """

    home: str
    procs_files: tuple[str, ...] = ()  # the builds' cgroup.procs files; empty without cgroups

    def environ(self) -> dict[str, str]:
        return {MARKER: self.home}

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """`argv`, run after joining the builds' cgroup when there is one."""
        if not self.procs_files:
            return list(argv)
        return [sys.executable, "-I", "-S", str(ENTER), *self.procs_files, "--", *argv]

    def stragglers(self) -> set[int]:
        """Live processes carrying this home's build mark, from any run but this process."""
        entry = f"{MARKER}={self.home}".encode()
        found: set[int] = set()
        with contextlib.suppress(OSError):
            for proc in os.scandir(PROC):
                if proc.name.isdigit() and int(proc.name) != os.getpid() and entry in _environ(proc.name):
                    found.add(int(proc.name))
        return found

    def kill_stragglers(self) -> list[int]:
        """SIGKILL every process `stragglers` finds, again until none is left (a forking one
        may add more) or TIMEOUT_KILL passes; the pids killed. Blocking: use a thread."""
        killed: list[int] = []
        deadline = time.monotonic() + TIMEOUT_KILL
        while (found := self.stragglers()) and time.monotonic() < deadline:
            for pid in found:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(POLL_KILL)
        return sorted(set(killed))


def _environ(pid: str) -> list[bytes]:
    try:
        return (PROC / pid / "environ").read_bytes().split(b"\0")
    except OSError:
        return []
