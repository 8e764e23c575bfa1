"""Instance ports: every instance, zygote fork and build check listens on a port from one range
Roost owns (default 20000-29999, outside the kernel's ephemeral range), so the firewall can
close that range to apps and to other hosts with static rules (see sandbox/firewall.py).

Never binds a port outside the range and never hands out a port twice while it may still be
taken: a port is free when a bind to it succeeds, and a port handed to a command app (which
binds it itself, later) is held back until the app has had time to bind it. Binds are
microsecond syscalls: fine on the loop.
"""

from __future__ import annotations

import errno
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from roost.errors import ConfigError, LimitExceeded

LOOPBACK = "127.0.0.1"
LIMIT_BACKLOG = 1024
DEFAULT_FIRST = 20000
DEFAULT_LAST = 29999
PORT_LOWEST = 1024  # below: privileged ports, which an app's uid could not bind
PORT_HIGHEST = 65535
HOLD_HANDED = 120.0  # seconds a port handed to a command app stays reserved: longer than any start may take


@dataclass(frozen=True, slots=True)
class PortRange:
    """Example: ``PortRange(20000, 29999).describe() == "20000-29999"``."""

    first: int = DEFAULT_FIRST
    last: int = DEFAULT_LAST

    def __post_init__(self) -> None:
        if not PORT_LOWEST <= self.first <= self.last <= PORT_HIGHEST:
            raise ValueError(f"{self.describe()} is not a range of ports between {PORT_LOWEST} and {PORT_HIGHEST}")

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def __len__(self) -> int:
        return self.last - self.first + 1

    def describe(self) -> str:
        return f"{self.first}-{self.last}"

    def overlaps(self, first: int, last: int) -> bool:
        return self.first <= last and first <= self.last


def parse_range(text: str) -> PortRange:
    """'20000-29999' -> PortRange(20000, 29999); ValueError says what is wrong."""
    first_text, dash, last_text = text.strip().partition("-")
    if not dash:
        raise ValueError(f"{text!r} is not FIRST-LAST")
    try:
        first, last = int(first_text), int(last_text)
    except ValueError:
        raise ValueError(f"{text!r} is not a range of port numbers") from None
    return PortRange(first, last)


def check_outside(ports: PortRange, **listeners: int) -> None:
    """Refuse a daemon listener (`edge=8080`, `api=8765`) on an instance port: the firewall would
    drop its clients from other hosts. Raises ConfigError naming the flag to change."""
    for name, port in listeners.items():
        if port in ports:
            flag = "--port" if name == "edge" else "--api-port"
            raise ConfigError(
                f"the {name} port {port} lies in the instance port range {ports.describe()}",
                hint=f"choose another {flag}, or move the instances with --instance-ports FIRST-LAST",
            )


class PortBook:
    """Allocates instance ports from `ports`, round robin from a random start (two daemons
    sharing a range rarely meet; when they do, the bind says so and the next port is tried).

    Example::

        book = PortBook(PortRange(20000, 29999))
        sock = book.listener()      # bound to 127.0.0.1:2xxxx and listening, for a runner or a fork
        port = book.free_port()     # for a command app, which binds $PORT itself
    """

    def __init__(self, ports: PortRange, hold: float = HOLD_HANDED) -> None:
        self.ports = ports
        self.hold = hold
        self._cursor = random.randrange(len(ports))  # noqa: S311 - spreading, not secrecy
        self._handed: dict[int, float] = {}  # port -> when it was handed to a command app (monotonic)

    def listener(self) -> socket.socket:
        """A listening socket on 127.0.0.1 with a port of the range, bound here so connections
        queue in the kernel before the instance accepts them (socket activation). Raises
        LimitExceeded when every port of the range is taken."""
        for port in self._candidates(time.monotonic()):
            if not _is_free_everywhere(port):  # a command app on [::]:port alone would not stop the bind below
                continue
            sock = _bound(socket.AF_INET, LOOPBACK, port)
            if sock is None:
                continue
            try:
                sock.listen(LIMIT_BACKLOG)
            except BaseException:
                sock.close()
                raise
            return sock
        raise self._exhausted()

    def free_port(self) -> int:
        """A port of the range nobody listens on, on any address, reserved for a while for the
        command app that will bind it (on 127.0.0.1, 0.0.0.0 or ::)."""
        now = time.monotonic()
        for port in self._candidates(now):
            if _is_free_everywhere(port):
                self._handed[port] = now
                return port
        raise self._exhausted()

    def _candidates(self, now: float) -> Iterator[int]:
        """Every port of the range once, from the cursor on, less those still held for a command
        app; the cursor moves past each port tried, so the next call starts after it."""
        self._handed = {p: t for p, t in self._handed.items() if now - t < self.hold}
        size = len(self.ports)
        start = self._cursor
        for step in range(size):
            offset = (start + step) % size
            self._cursor = (offset + 1) % size
            port = self.ports.first + offset
            if port not in self._handed:
                yield port

    def _exhausted(self) -> LimitExceeded:
        return LimitExceeded(
            f"no free instance port left in {self.ports.describe()}",
            hint="widen the range (roost serve --instance-ports FIRST-LAST) or run fewer instances",
        )


def _bound(family: socket.AddressFamily, host: str, port: int) -> socket.socket | None:
    """A socket bound to (host, port), or None when the port is taken there."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers do not make it taken
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return None
        raise
    except BaseException:
        sock.close()
        raise
    return sock


def _is_free_everywhere(port: int) -> bool:
    """Whether nobody listens on `port` on any IPv4 or IPv6 address: a dual-stack bind to `::`
    conflicts with all of them (on a host without IPv6, a bind to 0.0.0.0 does for IPv4)."""
    try:
        sock = _bound(socket.AF_INET6, "::", port)
    except OSError:
        sock = _bound(socket.AF_INET, "0.0.0.0", port)  # noqa: S104 - a probe, closed at once
    if sock is None:
        return False
    sock.close()
    return True
