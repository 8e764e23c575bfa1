"""Free loopback ports for services the tests start before they can report their own port
(pebble, redis-server, PostgreSQL, an edge port pebble must know first)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Collection


def free_ports(count: int, avoid: Collection[int] = ()) -> list[int]:
    """`count` distinct loopback ports nothing listens on now, none of them in `avoid` (ports chosen
    earlier and not yet listened on). The sockets stay bound until all are chosen, so the kernel
    cannot hand the same port out twice (it did: pebble's ACME and management listeners once got
    one port and pebble failed to start)."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in avoid:
                ports.append(port)
        return ports


def free_port() -> int:
    """One loopback port nothing listens on now."""
    return free_ports(1)[0]
