"""What one running process was really given, as read back from /proc by readback.py: identity,
filesystem view, seccomp, cgroup limits, network and /proc view. Values only: no reading here.

Every field is what the kernel says about the process, never what the settings asked for; None
means "could not be read" or "no limit" as each field says, so `roost info` can tell the two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Seen(StrEnum):
    """How a host path looks from inside the process's filesystem view."""

    HOST = "host"  # the very file or directory the host has there (same device and inode)
    OTHER = "other"  # something else at that path: a private tmpfs, an empty stand-in
    ABSENT = "absent"  # nothing at that path
    UNKNOWN = "unknown"  # the daemon could not look (not root, a closed directory on the way)


class SeccompMode(StrEnum):
    DISABLED = "disabled"
    STRICT = "strict"
    FILTER = "filter"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """Real, effective, saved and filesystem ids (/proc/PID/status), groups and effective capabilities."""

    uid: tuple[int, ...]
    gid: tuple[int, ...]
    groups: tuple[int, ...]
    capabilities: int  # CapEff as a bit mask: 0 is none
    no_new_privs: bool


@dataclass(frozen=True, slots=True)
class PathView:
    """One host path that matters (`label` says why), as the process sees it."""

    label: str  # "code", "venv", "tmp", "home", "store", "secret key", "app shop"
    path: str
    seen: Seen
    readable: bool = False  # by this process: every directory above searchable, and its ids pass the mode bits
    writable: bool = False  # the same, and its mount is not read-only
    mount: str = ""  # filesystem type of the mount holding it, in the process's view ("tmpfs", "ext4")


@dataclass(frozen=True, slots=True)
class Filesystem:
    own_mount_namespace: bool  # not the daemon's
    paths: tuple[PathView, ...] = ()


@dataclass(frozen=True, slots=True)
class Seccomp:
    mode: SeccompMode
    filters: int | None  # Seccomp_filters (Linux 5.9+), None on older kernels


@dataclass(frozen=True, slots=True)
class CgroupLimits:
    """The limits written on the process's own group; None is "max" (no limit of its own)."""

    version: str  # "v2", "v1" or "none"
    path: str = ""  # the group, relative to the hierarchy's root
    memory_max: int | None = None  # bytes
    cpu_max: float | None = None  # cores
    pids_max: int | None = None


@dataclass(frozen=True, slots=True)
class ProcessNetwork:
    own_namespace: bool  # not the daemon's network namespace
    interfaces: tuple[str, ...]  # as the process's namespace has them (/proc/PID/net/dev)
    firewall: str = ""  # in words: "nft inet roost_ab12 covers uid 200001", "no firewall table", ...
    firewall_covers: bool = False


@dataclass(frozen=True, slots=True)
class ProcView:
    own_proc: bool  # /proc in its view is not the host's mount (a new proc instance)
    hidepid: str  # "off", "noaccess", "invisible", "ptraceable" (mount option, as the kernel prints it)


@dataclass(frozen=True, slots=True)
class Isolation:
    """Everything read back about one process. `errors` lists what could not be read, in words."""

    pid: int
    command: str  # its argv[0], to tell a wrapper (bwrap, setpriv) from the app
    identity: ProcessIdentity | None = None
    filesystem: Filesystem | None = None
    seccomp: Seccomp | None = None
    cgroup: CgroupLimits | None = None
    network: ProcessNetwork | None = None
    proc: ProcView | None = None
    rlimits: dict[str, int | None] = field(default_factory=dict)  # soft limits that matter; None: unlimited
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (enums as their values)."""
        return asdict(self)


def describe(isolation: Isolation) -> list[str]:
    """The read-back in a few lines for people (`roost info`, the build's event), one per aspect."""
    lines = [_identity_line(isolation.identity), _seccomp_line(isolation.seccomp), _cgroup_line(isolation.cgroup)]
    lines += [_files_line(isolation.filesystem), _network_line(isolation.network), _proc_line(isolation.proc)]
    if isolation.errors:
        lines.append("not read: " + "; ".join(isolation.errors))
    return [line for line in lines if line]


def size(value: int | None) -> str:
    """Bytes as people write them: 268435456 -> "256M"; None -> "no limit"."""
    if value is None:
        return "no limit"
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= scale and value % scale == 0:
            return f"{value // scale}{unit}"
    return f"{value}B"


def _identity_line(identity: ProcessIdentity | None) -> str:
    if identity is None:
        return ""
    caps = "no capabilities" if identity.capabilities == 0 else f"capabilities {identity.capabilities:#x}"
    nnp = "no new privileges" if identity.no_new_privs else "may gain privileges (NoNewPrivs off)"
    return f"uid {identity.uid[1]} gid {identity.gid[1]}, {caps}, {nnp}"


def _seccomp_line(seccomp: Seccomp | None) -> str:
    if seccomp is None:
        return ""
    if seccomp.mode is SeccompMode.FILTER and seccomp.filters is not None:
        return f"seccomp filter ({seccomp.filters} program{'s' if seccomp.filters != 1 else ''})"
    return f"seccomp {seccomp.mode.value}"


def _cgroup_line(cgroup: CgroupLimits | None) -> str:
    if cgroup is None:
        return ""
    if cgroup.version == "none":
        return "no cgroup limits (no cgroup hierarchy)"
    cpu = "no limit" if cgroup.cpu_max is None else f"{cgroup.cpu_max:g} core{'s' if cgroup.cpu_max != 1 else ''}"
    pids = "no limit" if cgroup.pids_max is None else str(cgroup.pids_max)
    return f"cgroup {cgroup.version} {cgroup.path}: memory {size(cgroup.memory_max)}, cpu {cpu}, pids {pids}"


def path_words(view: PathView) -> str:
    """How one path looks from inside: "read-only", "writable", "private, writable", "hidden"."""
    if view.seen is Seen.ABSENT:
        return "hidden"
    if view.seen is Seen.UNKNOWN:
        return "not known"
    if view.seen is Seen.OTHER:
        return "private, writable" if view.writable else "hidden (an empty stand-in)"
    if not view.readable:
        return "writable, not readable" if view.writable else "closed to it"
    return "writable" if view.writable else "read-only"


def _files_line(filesystem: Filesystem | None) -> str:
    if filesystem is None:
        return ""
    namespace = "own mount namespace" if filesystem.own_mount_namespace else "the daemon's mount namespace"
    groups: dict[str, list[str]] = {}
    for view in filesystem.paths:
        groups.setdefault(path_words(view).split(" (")[0], []).append(view.label)
    parts = [f"{', '.join(labels)}: {words}" for words, labels in groups.items()]
    return f"files: {namespace}; " + "; ".join(parts)


def _network_line(network: ProcessNetwork | None) -> str:
    if network is None:
        return ""
    if network.own_namespace:
        return f"network: own namespace (interfaces: {', '.join(network.interfaces) or 'none'})"
    return f"network: the host's; {network.firewall}"


def _proc_line(proc: ProcView | None) -> str:
    if proc is None:
        return ""
    whose = "its own mount" if proc.own_proc else "the host's"
    return f"/proc: {whose}, hidepid={proc.hidepid}"
