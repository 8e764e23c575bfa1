"""One process's confinement, ready for `spawn`: its cgroup, the launcher's plan around its
argv, and the descriptors only the child may keep (the seccomp program, bwrap's info pipe).

Built by `Sandbox.confine`; owned by whoever spawns. `spawned()` closes the child's copies
once it exists; `close()` releases everything if it never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from roost.runtime.sandbox import bwrap
from roost.runtime.sandbox.bwrap import View
from roost.runtime.sandbox.cgroup import Cgroup
from roost.runtime.sandbox.seccomp import program_fd

LAUNCHER = Path(__file__).with_name("launcher.py")
LIMIT_INFO = 4096


@dataclass(slots=True)
class LauncherPlan:
    """What the launcher does before it executes the command (see launcher.py)."""

    procs: list[str] = field(default_factory=list)
    rlimits: list[tuple[int, int, int]] = field(default_factory=list)
    uid: int | None = None  # drop to it in the launcher (no bwrap); with bwrap, setpriv does
    gid: int | None = None
    seccomp: bytes | None = None
    netns: bool = False  # a private network namespace, made by the launcher (no bwrap, root)
    reveal: list[tuple[str, bool]] = field(default_factory=list)  # (path, writable) the uid must reach (no bwrap)
    hide_processes: bool = False  # a /proc with hidepid=invisible (root, apps as their own uids)
    bwrap: str | None = None  # the binary, when the command runs inside a bwrap view
    view: View | None = None


class Confinement:
    """Example (spawn does this)::

    confinement = sandbox.confine(spec, "i3kq...", ...)
    argv = confinement.command(["/venv/bin/python", "runner.py", ...])
    popen = Popen(argv, pass_fds=[*mine, *confinement.pass_fds])
    confinement.spawned(loop, lambda pid: ...)   # learns the app's pid behind bwrap
    """

    def __init__(self, plan: LauncherPlan, cgroup: Cgroup | None) -> None:
        self.plan = plan
        self.cgroup = cgroup
        self.sandboxed = plan.bwrap is not None  # bwrap reports a signal death as 128 + N
        self._fds: list[int] = []
        self._info_read: int | None = None

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return tuple(self._fds)

    def command(self, argv: list[str]) -> list[str]:
        """The launcher's argv around `argv`; opens the descriptors the child needs."""
        plan = self.plan
        seccomp_fd = None
        if plan.seccomp is not None:
            seccomp_fd = program_fd(plan.seccomp)
            self._fds.append(seccomp_fd)
        target = list(argv)
        if plan.bwrap is not None and plan.view is not None:
            read_fd, write_fd = os.pipe()
            self._info_read = read_fd
            self._fds.append(write_fd)
            view = _with_fds(plan.view, seccomp_fd, write_fd)
            target = bwrap.argv(plan.bwrap, view, target)
            seccomp_fd = None  # bwrap applies it
        launch = {
            "procs": plan.procs,
            "rlimits": plan.rlimits,
            "uid": plan.uid,
            "gid": plan.gid,
            "seccomp_fd": seccomp_fd,
            "netns": plan.netns,
            "reveal": plan.reveal,
            "hide_processes": plan.hide_processes,
            "argv": target,
        }
        return [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(launch, separators=(",", ":"))]

    def spawned(self, loop: asyncio.AbstractEventLoop, on_target: Callable[[int], None]) -> None:
        """The child exists: close our copies of its descriptors and learn the app's own pid from
        bwrap's info pipe (the process group the daemon signals), without waiting for it."""
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        read_fd, self._info_read = self._info_read, None
        if read_fd is None:
            return

        received = bytearray()
        learned = False

        def readable() -> None:
            # bwrap writes its JSON in pieces and may keep the pipe open: read until EOF
            nonlocal learned
            try:
                data = os.read(read_fd, LIMIT_INFO)
            except OSError:
                data = b""
            if data and len(received) < LIMIT_INFO:
                received.extend(data)
                pid = None if learned else _child_pid(bytes(received))
                if pid is not None:
                    learned = True
                    on_target(pid)
                return
            loop.remove_reader(read_fd)
            os.close(read_fd)

        loop.add_reader(read_fd, readable)

    def close(self) -> None:
        """Never spawned: release the descriptors."""
        for fd in [*self._fds, *([self._info_read] if self._info_read is not None else [])]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self._info_read = None


def _with_fds(view: View, seccomp_fd: int | None, info_fd: int) -> View:
    return dataclasses.replace(view, seccomp_fd=seccomp_fd, info_fd=info_fd)


def _child_pid(data: bytes) -> int | None:
    """bwrap's `{"child-pid": 1234}` (possibly followed by more JSON) -> 1234."""
    try:
        info = json.JSONDecoder().raw_decode(data.decode("utf-8", "replace").strip())[0]
    except ValueError:
        return None
    pid = info.get("child-pid") if isinstance(info, dict) else None
    return pid if isinstance(pid, int) else None
