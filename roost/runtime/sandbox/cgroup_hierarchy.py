"""Finding the cgroup hierarchy and Roost's parent group in it: v2 (a pure unified mount with
memory, cpu and pids available), else v1 (one mount per controller), else none.

Roost's parent is created under the daemon's *own* cgroup of each controller, never at the
top: under systemd (`Delegate=yes`) that is the service's delegated subtree, and under any
other supervisor the instances stay inside whatever accounting it set up. On v2 the parent's
controllers must be enabled in the own group's `cgroup.subtree_control`; a group that holds
processes cannot do that (the "no internal processes" rule), so the daemon first moves itself
into a leaf `<own>/daemon`, as systemd's delegation documentation asks.

Detection reads a few small files: call it once, in a thread.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from roost.runtime.sandbox.cgroup import Cgroup, CgroupV1, CgroupV2, GroupLimits

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")
V2_CONTROLLERS = ("memory", "cpu", "pids")


class CgroupVersion(StrEnum):
    V2 = "v2"
    V1 = "v1"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """Where Roost's groups live: for v2 one directory, for v1 one per controller."""

    version: CgroupVersion
    parents: Mapping[str, Path] = field(default_factory=dict)  # controller ("" for v2) -> Roost's parent dir
    why: str = ""  # for NONE: why not, in words

    def describe(self) -> str:
        if self.version is CgroupVersion.NONE:
            return f"no cgroups ({self.why})"
        if self.version is CgroupVersion.V2:
            return "cgroup v2 (memory, cpu, pids)"
        return f"cgroup v1 ({', '.join(c for c in self.parents if c != 'cpuacct')})"

    def existing(self) -> list[Cgroup]:
        """The groups already under Roost's parent (left by an earlier run of this home), a group's
        children before the group (a build's own group before `builds`): removable in that order."""
        if self.version is CgroupVersion.V2:
            return [CgroupV2(self.parents[""] / name) for name in _nested(self.parents[""])]
        if self.version is CgroupVersion.V1:
            names: set[str] = set()
            for parent in self.parents.values():
                names |= set(_nested(parent))
            ordered = sorted(names, key=lambda name: (-name.count("/"), name))
            return [CgroupV1({c: parent / n for c, parent in self.parents.items()}) for n in ordered]
        return []

    def create(self, name: str, limits: GroupLimits | None) -> Cgroup:
        """A new group `name` under Roost's parent with `limits` applied (None: the parent's).
        Raises OSError."""
        if self.version is CgroupVersion.V2:
            return CgroupV2.create(self.parents[""] / name, limits)
        if self.version is CgroupVersion.V1:
            return CgroupV1.create({c: parent / name for c, parent in self.parents.items()}, limits)
        raise OSError(errno.ENOTSUP, "no cgroup hierarchy")

    def delegate(self, name: str) -> None:
        """Let the group `name` (under Roost's parent) have limited children: on v2, enable the
        controllers in its subtree_control (it must hold no process); nothing to do on v1.
        Raises OSError."""
        if self.version is CgroupVersion.V2:
            controls = self.parents[""] / name / "cgroup.subtree_control"
            wanted = " ".join(f"+{c}" for c in V2_CONTROLLERS)
            if set(controls.read_text().split()) != set(V2_CONTROLLERS):
                controls.write_text(wanted)


def _nested(parent: Path, depth: int = 2) -> list[str]:
    """The group directories under `parent`, down to `depth` levels, as relative names, deepest first."""
    found: list[str] = []
    if depth and parent.is_dir():
        for child in sorted(d for d in parent.iterdir() if d.is_dir()):
            found += [f"{child.name}/{name}" for name in _nested(child, depth - 1)]
            found.append(child.name)
    return sorted(found, key=lambda name: (-name.count("/"), name))


def own_paths(text: str) -> dict[str, str]:
    """/proc/self/cgroup as {controller: path}; the v2 entry under ''.

    >>> own_paths("4:memory:/a/b\\n2:cpu,cpuacct:/\\n0::/user.slice\\n")
    {'memory': '/a/b', 'cpu': '/', 'cpuacct': '/', '': '/user.slice'}
    """
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                paths[controller] = parts[2]
    return paths


def detect(root: Path, own: Mapping[str, str], parent: str, pid: int | None = None) -> Hierarchy:
    """Find the hierarchy under `root` and create Roost's parent group `parent` in it.

    `own` is the daemon's /proc/self/cgroup (see `own_paths`); `pid` the process moved into
    `<own>/daemon` on v2 when the own group holds processes (the daemon itself by default).
    """
    if (root / "cgroup.controllers").is_file():
        return _detect_v2(root, own.get("", "/"), parent, os.getpid() if pid is None else pid)
    if all((root / c / "cgroup.procs").is_file() for c in ("memory", "cpu", "pids")):
        return _detect_v1(root, own, parent)
    unified = root / "unified" / "cgroup.controllers"
    if unified.is_file() and not unified.read_text().split():
        why = f"{root} has only an empty unified hierarchy and no v1 memory, cpu and pids controllers"
    else:
        why = f"no cgroup v2 or v1 memory, cpu and pids controllers under {root}"
    return Hierarchy(CgroupVersion.NONE, why=why)


def _detect_v1(root: Path, own: Mapping[str, str], parent: str) -> Hierarchy:
    parents: dict[str, Path] = {}
    for controller in V1_CONTROLLERS:
        base = root / controller
        if not (base / "cgroup.procs").is_file():
            continue  # cpuacct may be missing or merged into cpu: usage is then read elsewhere
        directory = base / own.get(controller, "/").lstrip("/") / parent
        try:
            directory.mkdir(exist_ok=True)
        except OSError as exc:
            return Hierarchy(CgroupVersion.NONE, why=f"cannot create {directory}: {exc.strerror}")
        parents[controller] = directory
    return Hierarchy(CgroupVersion.V1, parents)


def _detect_v2(root: Path, own: str, parent: str, pid: int) -> Hierarchy:
    available = set((root / "cgroup.controllers").read_text().split())
    missing = [c for c in V2_CONTROLLERS if c not in available]
    if missing:
        return Hierarchy(CgroupVersion.NONE, why=f"cgroup v2 without the {', '.join(missing)} controller(s)")
    base = root / own.lstrip("/")
    enable = " ".join(f"+{c}" for c in V2_CONTROLLERS)
    try:
        _enable(base, enable, pid, top=(own == "/"))
        directory = base / parent
        directory.mkdir(exist_ok=True)
        (directory / "cgroup.subtree_control").write_text(enable)
    except OSError as exc:
        return Hierarchy(CgroupVersion.NONE, why=f"cannot set up {base / parent}: {exc.strerror or exc}")
    return Hierarchy(CgroupVersion.V2, {"": directory})


def _enable(base: Path, enable: str, pid: int, top: bool) -> None:
    """Enable the controllers for `base`'s children; a non-root group with processes in it must
    first move them (the daemon) into a leaf."""
    try:
        (base / "cgroup.subtree_control").write_text(enable)
    except OSError as exc:
        if exc.errno != errno.EBUSY or top:
            raise
        leaf = base / "daemon"
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(pid))
        (base / "cgroup.subtree_control").write_text(enable)


def detect_here(root: Path, parent: str) -> Hierarchy:
    """`detect` for this process, reading its /proc/self/cgroup."""
    try:
        own = own_paths(Path("/proc/self/cgroup").read_text())
    except OSError as exc:
        return Hierarchy(CgroupVersion.NONE, why=f"cannot read /proc/self/cgroup: {exc.strerror}")
    return detect(root, own, parent)
