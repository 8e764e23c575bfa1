"""Builds confined like instances: the app's own uid with the build gid (`uids.build_gid`), a
bubblewrap view of the build's own folders only, seccomp, and a cgroup of its own under the
builds' group with the build limits. Satisfies roost.builder's `BuildJails`/`BuildJail` without
importing roost.builder (the daemon wires the two). Never decides what a build runs.

Without bubblewrap (root), the launcher's `reveal` shows the uid its folders behind closed
directories, and the rest of the home stays closed by its modes; without cgroups there are
no memory, CPU or pids limits for builds (the start-up line says so).
"""

from __future__ import annotations

import asyncio
import os
import resource
from collections.abc import Sequence
from pathlib import Path

from roost.runtime.sandbox import bwrap
from roost.runtime.sandbox.cgroup import Cgroup, GroupLimits
from roost.runtime.sandbox.confine import Confinement, LauncherPlan
from roost.runtime.sandbox.sandbox import Sandbox
from roost.runtime.sandbox.sandbox_settings import BuildLimits
from roost.runtime.sandbox.uids import build_gid

UNCONFINED_BUILDS = (
    "builds: not sandboxed (--no-build-sandbox): uv, every package's setup.py and build backend, and bytecode "
    "compilation run as the daemon's user with its privileges, no limits but --build-timeout"
)
MEMORY = "memory"
PIDS = "pids"


class SandboxedBuild:
    """One build's confinement; its cgroup (None without cgroups) is its own."""

    def __init__(
        self, sandbox: Sandbox, limits: BuildLimits, uid: int | None, gid: int | None, group: Cgroup | None
    ) -> None:
        self._sandbox = sandbox
        self._limits = limits
        self._uid = uid
        self._gid = gid
        self.group = group

    @property
    def uid(self) -> int | None:
        return self._uid

    @property
    def gid(self) -> int | None:
        return self._gid

    def confine(self, cwd: Path, writable: Sequence[Path], read_only: Sequence[Path]) -> Confinement:
        facilities = self._sandbox.facilities
        plan = LauncherPlan(
            procs=[str(p) for p in self.group.procs_files()] if self.group is not None else [],
            rlimits=[(resource.RLIMIT_CORE, 0, 0)],
            seccomp=facilities.filter.program if facilities.filter is not None else None,
            hide_processes=facilities.hide_processes,
        )
        if self._sandbox.uses_bwrap():
            plan.bwrap = facilities.bwrap
            plan.view = bwrap.View(
                code_dir=cwd,
                read_only=tuple(read_only),
                writable=tuple(writable),
                tmp_size=self._limits.tmp,
                uid=self._uid,
                gid=self._gid,
            )
        else:
            plan.uid, plan.gid = self._uid, self._gid
            if self._uid is not None:
                plan.reveal = [(str(p), True) for p in writable] + [(str(p), False) for p in read_only]
        return Confinement(plan, None)

    def stopped(self) -> list[tuple[str, str]]:
        """(limit, detail) for each limit that refused or killed something: ("pids", "512: 488 forks refused")."""
        if self.group is None:
            return []
        found: list[tuple[str, str]] = []
        if kills := self.group.oom_kills():
            found.append((MEMORY, f"{_size(self._limits.memory)}: {kills} process(es) killed for memory"))
        if refused := self.group.pids_refused():
            found.append((PIDS, f"{self._limits.pids} processes: {refused} fork(s) refused"))
        return found

    def kill(self) -> None:
        if self.group is not None:
            self.group.kill()

    def close(self) -> None:
        if self.group is not None:
            self.group.remove()


class SandboxedBuilds:
    """Example (the daemon)::

    jails = SandboxedBuilds(runtime.sandbox, BuildLimits(memory=2 * GIB))
    jail = await jails.open("hello", "d4f1c2a9")
    """

    def __init__(self, sandbox: Sandbox, limits: BuildLimits) -> None:
        self.sandbox = sandbox
        self.limits = limits

    async def open(self, app: str, build: str) -> SandboxedBuild:
        uid = await self.sandbox.app_uid(app)
        gid = build_gid(self.sandbox.settings.uid_first) if uid is not None else None
        limits = GroupLimits(self.limits.memory, self.limits.cpu, self.limits.pids)
        group = await asyncio.to_thread(self.sandbox.build_child, build, limits)
        return SandboxedBuild(self.sandbox, self.limits, uid, gid, group)

    def describe(self) -> str:
        """What builds get, and what they do not, for the start-up line."""
        s, limits = self.sandbox, self.limits
        if s.facilities.uids is not None:
            parts = [f"as their app's uid, gid {build_gid(s.settings.uid_first)}"]
        else:
            parts = [f"as uid {os.geteuid()} like the daemon (not root: a build can read and write what it can)"]
        if s.uses_bwrap():
            parts.append("a bubblewrap view of their own folders")
        else:
            parts.append("no bubblewrap (the home is closed by its modes only, the rest of the host is visible)")
        if s.has_cgroups():
            parts.append(f"memory {_size(limits.memory)}, cpu {limits.cpu:g}, pids {limits.pids}")
        else:
            parts.append("no memory, CPU or pids limits (no cgroups)")
        parts.append("seccomp" if s.facilities.filter is not None else "no seccomp")
        return "builds: " + ", ".join(parts)


def _size(size: int) -> str:
    for unit, factor in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
