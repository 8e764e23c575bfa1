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


class SeccompMode(StrEnum):
    DISABLED = "disabled"
    STRICT = "strict"
    FILTER = "filter"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Identity:
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
    writable: bool  # by this process: mount not read-only, and its ids pass the mode bits
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
class Network:
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
    identity: Identity | None = None
    filesystem: Filesystem | None = None
    seccomp: Seccomp | None = None
    cgroup: CgroupLimits | None = None
    network: Network | None = None
    proc: ProcView | None = None
    rlimits: dict[str, int | None] = field(default_factory=dict)  # soft limits that matter; None: unlimited
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (enums as their values)."""
        return asdict(self)
