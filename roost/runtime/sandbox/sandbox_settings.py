"""What the daemon may choose about the sandbox; every field has a default that works as root
or not (each piece that cannot work here falls back, and says so once at start)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from roost.runtime.ports import PortRange
from roost.runtime.sandbox.buildnet import Endpoint

CGROUP_ROOT = Path("/sys/fs/cgroup")
GIB = 1024**3


@dataclass(frozen=True, slots=True)
class BuildLimits:
    """The cgroup limits of each build (`roost serve --build-memory/--build-cpu/--build-pids`):
    generous enough for a numpy/pandas install from wheels or a small C extension from source,
    low enough that a fork bomb or a runaway setup.py stops there. `tmp` sizes the private /tmp."""

    memory: int = 2 * GIB
    cpu: float = 1.0
    pids: int = 512
    tmp: int = GIB


@dataclass(frozen=True, slots=True)
class SandboxSettings:
    """Example (the daemon)::

        LocalRuntime(home, logs, events, sandbox=SandboxSettings(uid_first=300000, uid_last=365535))

    `firewall=True` (the daemon's default) installs the nftables table of sandbox/firewall.py;
    it is off by default here so tests of other layers leave no table behind.
    `enabled=False` runs instances as plain children (tests of other layers, or a host
    where the user takes care of isolation). `cgroup_root` is injectable so the cgroup
    code can be exercised against a directory laid out like cgroupfs.
    """

    enabled: bool = True
    cgroups: bool = True
    cgroup_root: Path = CGROUP_ROOT
    cgroup_parent: str = "roost"  # created under the daemon's own cgroup of each controller
    bwrap: bool = True
    seccomp: bool = True
    separate_users: bool = True  # only when the daemon runs as root
    uid_first: int = 200000
    uid_last: int = 265535
    cpu_window: float = 10.0  # seconds: limits.cpu_budget is CPU seconds per this window
    ports: PortRange = field(default_factory=PortRange)  # every instance listens on a port of this range
    firewall: bool = False  # root only: close `ports` (and `guarded_ports`) to the apps and to other hosts
    guarded_ports: tuple[int, ...] = ()  # local TCP ports no app may reach (the admin API's)
    closed_ports: tuple[PortRange, ...] = ()  # TCP ports no app nor build may reach on any address (Ray's)
    build_gid: int | None = None  # with the firewall: sockets of this gid (builds) reach only `build_endpoints`
    build_endpoints: tuple[Endpoint, ...] = ()  # the package index hosts and the operator's --build-allow
