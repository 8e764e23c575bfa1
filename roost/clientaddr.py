"""Who is asking: the socket's peer or, behind trusted proxies, the client they forwarded for.

The one home of that rule for the admin API (audit, loopback trust) and the
edge (per-client limits, X-Forwarded-For upstream). A leaf: pure functions on
strings and networks, no I/O, nothing of Roost imported.

Behind a chain of proxies each appends the address it received from, so
X-Forwarded-For reads left (the original client) to right (the hop nearest
us). Only the hops our trusted proxies appended can be believed: walk from the
right, skip trusted addresses, and the first untrusted one is the client. When
every hop is trusted (a request from inside the proxies' own network), the
leftmost is the client (as nginx's real_ip_recursive and Go's and Express's
"trust proxy" walks answer).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOCALHOST = frozenset({"127.0.0.1", "::1"})


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """The trusted proxy networks ('10.0.0.0/8'); raises ValueError naming a bad CIDR."""
    found: list[Network] = []
    for cidr in cidrs:
        try:
            found.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{cidr!r} is not a network (expected a CIDR such as 10.0.0.0/8 or 127.0.0.1/32)") from exc
    return tuple(found)


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`address` as an IP: spaces, [brackets] and an IPv6 %zone are ignored; None when it is not one."""
    try:
        return ipaddress.ip_address(address.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_trusted(address: str, networks: Sequence[Network]) -> bool:
    """Whether `address` is in one of the trusted proxy networks (never, for what is not an IP)."""
    if not networks:
        return False
    ip = _ip(address)
    return ip is not None and any(ip in network for network in networks)


def is_localhost(address: str) -> bool:
    """Exactly 127.0.0.1 or ::1: what --trust-loopback lets in. Other 127/8
    addresses can belong to network namespaces or bridged setups, so they are not trusted."""
    try:
        return str(ipaddress.ip_address(address.strip("[]"))) in LOCALHOST
    except ValueError:
        return False


def forwarded_client(peer: str, forwarded_for: str, networks: Sequence[Network]) -> str:
    """The client a trusted `peer` forwarded for: the rightmost X-Forwarded-For hop that is not
    trusted; the leftmost when all are; `peer` when the header names none.

    >>> nets = parse_networks(["10.0.0.0/8"])
    >>> forwarded_client("10.0.0.1", "203.0.113.9, 198.51.100.2, 10.1.1.1", nets)
    '198.51.100.2'
    >>> forwarded_client("10.0.0.1", "10.3.3.3, 10.2.2.2", nets)
    '10.3.3.3'
    """
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not is_trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


def client_address(peer: str, forwarded_for: str | None, networks: Sequence[Network]) -> str:
    """The address to believe: X-Forwarded-For counts only when `peer` is a trusted proxy."""
    if not forwarded_for or not is_trusted(peer, networks):
        return peer
    return forwarded_client(peer, forwarded_for, networks)


def client_key(address: str) -> str:
    """The unit per-client limits count: an IPv4 address, or an IPv6 /64 (one host owns a whole /64)."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
