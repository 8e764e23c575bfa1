"""Who is asking: the socket's peer, or, behind a trusted proxy, the right-most
untrusted hop of X-Forwarded-For. Pure functions; no I/O."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    """'10.0.0.0/8' -> network; raises ValueError naming the bad one."""
    networks: list[Network] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{cidr!r} is not a network like 10.0.0.0/8 or 127.0.0.1/32") from exc
    return tuple(networks)


def _in(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in networks)


LOCALHOST = frozenset({"127.0.0.1", "::1"})


def is_localhost(address: str) -> bool:
    """Exactly 127.0.0.1 or ::1: what --trust-loopback lets in. Other 127/8
    addresses can belong to network namespaces or bridged setups, so they are not trusted."""
    try:
        return str(ipaddress.ip_address(address.strip("[]"))) in LOCALHOST
    except ValueError:
        return False


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The address to believe. X-Forwarded-For counts only when the peer is a
    trusted proxy, and then only its right-most hop that is not itself trusted."""
    if not forwarded_for or not _in(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer
