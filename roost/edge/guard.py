"""DDoS defences per client address: open connections and a token-bucket request rate.

Also decides who is a client: the TCP peer, or, behind a trusted proxy, the
nearest untrusted address in X-Forwarded-For. The arithmetic (`refill`) is
pure; `ClientGuard` only keeps the per-address state, pruned as it fills.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """The trusted proxy networks; raises ValueError naming a bad CIDR."""
    found: list[Network] = []
    for cidr in cidrs:
        try:
            found.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {cidr!r} (expected a CIDR such as 10.0.0.0/8)") from exc
    return tuple(found)


def is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_key(address: str) -> str:
    """The unit that limits count: an IPv4 address, or an IPv6 /64 (one host owns a whole /64)."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))


def forwarded_client(peer: str, forwarded_for: str, networks: tuple[Network, ...]) -> str:
    """The client behind trusted proxies: the rightmost X-Forwarded-For hop that is not one of them."""
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not is_trusted(hop, networks):
            return hop
    return peer


def refill(tokens: float, last: float, now: float, rate: float, burst: float) -> float:
    """Tokens in a bucket at `now` that held `tokens` at `last`."""
    return min(burst, tokens + (now - last) * rate)


class ClientGuard:
    """Counts open connections per client and in all, and meters requests per client."""

    __slots__ = ("_buckets", "_burst", "_open", "_rate", "limit_per_client", "limit_total", "total")

    def __init__(self, limit_total: int, limit_per_client: int, rate: float, burst: int) -> None:
        self.limit_total = limit_total
        self.limit_per_client = limit_per_client
        self._rate = rate
        self._burst = float(burst)
        self.total = 0
        self._open: dict[str, int] = {}
        self._buckets: dict[str, list[float]] = {}

    def admit(self, key: str | None) -> bool:
        """Count a new connection, or say no (over either limit). `key` None: a trusted proxy."""
        if self.total >= self.limit_total:
            return False
        if key is not None:
            count = self._open.get(key, 0)
            if count >= self.limit_per_client:
                return False
            self._open[key] = count + 1
        self.total += 1
        return True

    def leave(self, key: str | None) -> None:
        self.total -= 1
        if key is not None:
            count = self._open.get(key, 0) - 1
            if count > 0:
                self._open[key] = count
            else:
                self._open.pop(key, None)

    def open_connections(self, key: str) -> int:
        return self._open.get(key, 0)

    def take(self, key: str, now: float) -> float:
        """Take one request token: 0.0 if allowed, else the seconds until one is back (Retry-After)."""
        if self._rate <= 0:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = [self._burst - 1.0, now]
            return 0.0
        tokens = refill(bucket[0], bucket[1], now, self._rate, self._burst)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self._rate

    def prune(self, now: float) -> None:
        """Forget buckets that have refilled: their clients are indistinguishable from new ones."""
        if self._rate <= 0:
            return
        full = [
            k
            for k, (tokens, last) in self._buckets.items()
            if refill(tokens, last, now, self._rate, self._burst) >= self._burst
        ]
        for key in full:
            del self._buckets[key]


def retry_after(seconds: float) -> int:
    """Whole seconds for a Retry-After header: at least 1."""
    return max(1, math.ceil(seconds))
