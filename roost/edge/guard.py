"""DDoS defences per client address: open connections and a token-bucket request rate.

Who the client is (the peer, or the client a trusted proxy forwarded for) is
roost/clientaddr.py's rule. The arithmetic (`refill`) is pure; `ClientGuard`
only keeps the per-address state, pruned as it fills.
"""

from __future__ import annotations

import math


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
