"""Per-deployment request counters for the autoscaler and metrics.

Plain ints and lists bumped on the hot path: no locks (one event loop owns
them) and no metrics library. `snapshot()` hands out a frozen copy.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass

from roost.model import DeploymentId

LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds in seconds (Prometheus' `le`); one more bucket counts everything slower."""


@dataclass(frozen=True, slots=True)
class EdgeCounters:
    """What the edge saw of one deployment since it started.

    `latency` has one count per bound in LATENCY_BUCKETS plus one for slower
    requests (not cumulative); `requests_2xx` etc. count answers by class,
    the edge's own error pages included.
    """

    deployment: DeploymentId
    in_flight: int
    queued: int
    requests_1xx: int
    requests_2xx: int
    requests_3xx: int
    requests_4xx: int
    requests_5xx: int
    latency: tuple[int, ...]
    latency_sum: float
    last_request_at: float | None  # wall-clock time (time.time()) of the last answer
    starts: tuple[tuple[str, int], ...] = ()  # ("cold" | "warm" | "hot", requests forwarded so)

    @property
    def requests(self) -> int:
        return self.requests_1xx + self.requests_2xx + self.requests_3xx + self.requests_4xx + self.requests_5xx


class Tally:
    """The mutable counters behind one deployment's EdgeCounters."""

    __slots__ = ("by_class", "deployment", "in_flight", "last_request", "latency", "latency_sum", "starts")

    def __init__(self, deployment: DeploymentId) -> None:
        self.deployment = deployment
        self.in_flight = 0
        self.by_class = [0] * 6  # index: status // 100
        self.latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.last_request: float | None = None  # time.monotonic(): one clock read per request
        self.starts = {b"cold": 0, b"warm": 0, b"hot": 0}  # by X-Roost-Start

    def record(self, status: int, seconds: float, now: float) -> None:
        """One answered request: its status class, its latency and when it ended (time.monotonic())."""
        self.by_class[min(max(status // 100, 0), 5)] += 1
        self.latency[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        self.last_request = now

    def snapshot(self, queued: int) -> EdgeCounters:
        """A frozen copy; `queued` comes from the activator, which owns the queues."""
        c = self.by_class
        last = self.last_request
        return EdgeCounters(
            deployment=self.deployment,
            in_flight=self.in_flight,
            queued=queued,
            requests_1xx=c[1],
            requests_2xx=c[2],
            requests_3xx=c[3],
            requests_4xx=c[4],
            requests_5xx=c[5],
            latency=tuple(self.latency),
            latency_sum=self.latency_sum,
            last_request_at=None if last is None else time.time() - (time.monotonic() - last),
            starts=tuple((kind.decode(), count) for kind, count in self.starts.items()),
        )
