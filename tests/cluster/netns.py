"""Network-namespaced "machines" for the cluster tests: N hosts on one private LAN.

Each run makes a namespace that holds a bridge (the LAN's switch) and one namespace per host,
joined to the bridge by a veth pair; hosts are 10.77.N.1, 10.77.N.2, ... on 10.77.N.0/24, N
chosen per run. Every name carries a random run id, so concurrent runs never meet: their LANs
are different namespaces. The LAN's uplink is this machine's address 10.77.N.254 (a veth from
the root namespace onto the bridge; nothing is forwarded or routed beyond it): the package
index's proxy listens there (proxy.py), as a company's network offers one. A host's commands
run with `nsenter --net` (not `ip netns exec`, which mounts a sysfs of its own where no cgroup
controller shows), so the daemons confine instances with the machine's cgroups. `Lan.close`
(and the `lan` context manager) kills every process left in the hosts' namespaces and deletes
every namespace, even after a failure. Needs root and iproute2.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

SUBNET_PREFIX = "10.77"
UPLINK = 254  # the root namespace's address on each LAN
KILL_DEADLINE = 10.0


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def namespaces() -> set[str]:
    return {line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()}


def pids_in(namespace: str) -> list[int]:
    """Every process whose network namespace is `namespace` (`ip netns pids`)."""
    with contextlib.suppress(RuntimeError):
        return [int(p) for p in _ip("netns", "pids", namespace).split()]
    return []


def kill_all_in(namespace: str, deadline: float = KILL_DEADLINE) -> None:
    """SIGKILL every process in `namespace` until none is left, as a machine that loses power: all
    are stopped first, so none sees another die (a parent-death signal would let Ray leave cleanly)."""
    end = time.monotonic() + deadline
    for pid in pids_in(namespace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    while pids := pids_in(namespace):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > end:
            raise RuntimeError(f"processes {pids} in {namespace} survive SIGKILL")
        time.sleep(0.05)


@dataclass
class Host:
    """One machine: a network namespace with `address` on the LAN."""

    namespace: str
    address: str

    def argv(self, command: Sequence[str]) -> list[str]:
        """`command` run inside this host's namespace."""
        return ["nsenter", f"--net=/run/netns/{self.namespace}", "--", *command]

    def pids(self) -> list[int]:
        return pids_in(self.namespace)

    def kill_all(self) -> None:
        kill_all_in(self.namespace)


@dataclass
class Lan:
    run: str
    subnet: str = f"{SUBNET_PREFIX}.0"
    hosts: list[Host] = field(default_factory=list)
    uplinked: bool = False

    @property
    def uplink(self) -> str:
        """This machine's own address on the LAN (the root namespace's end of the uplink)."""
        return f"{self.subnet}.{UPLINK}"

    @property
    def switch(self) -> str:
        return f"roostc-{self.run}-lan"

    def names(self) -> list[str]:
        return [self.switch, *(h.namespace for h in self.hosts)]

    def add_host(self) -> Host:
        index = len(self.hosts) + 1
        host = Host(f"roostc-{self.run}-h{index}", f"{self.subnet}.{index}")
        self.hosts.append(host)
        inner, outer = f"rc{self.run}h{index}", f"rc{self.run}s{index}"  # 15 characters at most
        _ip("netns", "add", host.namespace)
        _ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        _ip("link", "set", inner, "netns", host.namespace)
        _ip("link", "set", outer, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", outer, "master", "br0", "up")
        _ip("-n", host.namespace, "link", "set", "lo", "up")
        _ip("-n", host.namespace, "link", "set", inner, "name", "eth0")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        return host

    def cut(self, host: Host) -> None:
        """`host`'s link down: its processes live on, and nothing reaches them or comes from them."""
        _ip("-n", host.namespace, "link", "set", "eth0", "down")

    def mend(self, host: Host) -> None:
        _ip("-n", host.namespace, "link", "set", "eth0", "up")

    def add_uplink(self) -> None:
        """A veth from the root namespace onto the bridge, with `uplink` on the root's end."""
        root, far = f"rc{self.run}u", f"rc{self.run}v"
        _ip("link", "add", root, "type", "veth", "peer", "name", far)
        self.uplinked = True
        _ip("link", "set", far, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", far, "master", "br0", "up")
        _ip("addr", "add", f"{self.uplink}/24", "dev", root)
        _ip("link", "set", root, "up")

    def close(self) -> None:
        """Kill what runs in each host, then delete every namespace of this run (veths go with them)."""
        errors = []
        if self.uplinked:
            with contextlib.suppress(RuntimeError):  # gone with the switch's namespace already
                _ip("link", "del", f"rc{self.run}u")
        for host in self.hosts:
            try:
                host.kill_all()
            except RuntimeError as exc:
                errors.append(str(exc))
        for name in self.names():
            if name in namespaces():
                try:
                    _ip("netns", "del", name)
                except RuntimeError as exc:
                    errors.append(str(exc))
        if errors:
            raise RuntimeError("; ".join(errors))


def free_subnet() -> str:
    """A 10.77.N prefix no route of the root namespace uses yet (another run's LAN)."""
    taken = _ip("route", "show")
    for _ in range(100):
        candidate = f"{SUBNET_PREFIX}.{secrets.randbelow(250)}"
        if f"{candidate}.0/24" not in taken:
            return candidate
    raise RuntimeError(f"no free {SUBNET_PREFIX}.N.0/24 for a test LAN")


@contextlib.contextmanager
def lan(count: int, run: str | None = None) -> Iterator[Lan]:
    """`count` hosts on a bridge of their own; everything removed on the way out. `run`: the
    names' unique part (six hex digits), random by default."""
    network = Lan(run or secrets.token_hex(3), free_subnet())
    try:
        _ip("netns", "add", network.switch)
        _ip("-n", network.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", network.switch, "link", "set", "br0", "up")
        for _ in range(count):
            network.add_host()
        network.add_uplink()
        yield network
    finally:
        network.close()
