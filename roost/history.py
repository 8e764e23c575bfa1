"""The last hour of each app's figures, for the dashboard's charts: a ring buffer of samples.

Fed by the same counters as /metrics (the edge's EdgeCounters, the runtime's instances) plus the
memory the daemon measures; Prometheus stays the long-term store. Sampling and the series are
pure (`now` is an argument); `sample_forever` records one every SAMPLE_SECONDS with the memory
its caller measures. Never reads the store and never starts anything.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from roost.edge.counters import LATENCY_BUCKETS, EdgeCounters
from roost.model import DeploymentId, InstanceState
from roost.runtime.protocol import InstanceInfo

SAMPLE_SECONDS = 10.0
WINDOW_SECONDS = 3600.0
RATE_WINDOW_SECONDS = 30.0  # the overview's requests per second, p95 and error rate are over this
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
STARTS = ("cold", "warm", "hot")


@dataclass(frozen=True, slots=True)
class AppSample:
    """One app's counters at one moment, summed over its deployments (cumulative, as the edge keeps them)."""

    requests: tuple[int, ...] = (0,) * len(CLASSES)
    latency: tuple[int, ...] = (0,) * (len(LATENCY_BUCKETS) + 1)
    starts: tuple[int, ...] = (0,) * len(STARTS)
    instances: int = 0
    memory: int = 0


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    apps: Mapping[str, AppSample] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """What happened in the interval ending at `at`: rates per second, latency quantiles in
    seconds (None without requests), starts counted, instances and memory at its end."""

    at: float
    requests: tuple[float, ...]  # per second, by CLASSES
    p50: float | None
    p95: float | None
    starts: tuple[int, ...]  # by STARTS
    instances: int
    memory: int


@dataclass(frozen=True, slots=True)
class Rates:
    """The overview's live figures for one app."""

    rps: float
    p95: float | None
    error_rate: float | None  # the share of 5xx answers; None without requests


def sample_of(
    now: float,
    counters: Iterable[EdgeCounters],
    apps_of: Mapping[DeploymentId, str],
    instances: Iterable[InstanceInfo],
    memory: Mapping[str, int],
) -> Sample:
    """Sum the edge's counters per app (`apps_of`: deployment -> app) and count ready instances. Pure."""
    apps: dict[str, AppSample] = {}
    for c in counters:
        app = apps_of.get(c.deployment)
        if app is None:
            continue
        was = apps.get(app, AppSample())
        starts = dict(c.starts)
        apps[app] = AppSample(
            requests=_plus(
                was.requests, (c.requests_1xx, c.requests_2xx, c.requests_3xx, c.requests_4xx, c.requests_5xx)
            ),
            latency=_plus(was.latency, c.latency),
            starts=_plus(was.starts, tuple(starts.get(kind, 0) for kind in STARTS)),
        )
    ready: dict[str, int] = {}
    for info in instances:
        if info.state is InstanceState.READY:
            ready[info.app] = ready.get(info.app, 0) + 1
    for app in {*apps, *ready, *memory}:
        was = apps.get(app, AppSample())
        apps[app] = AppSample(was.requests, was.latency, was.starts, ready.get(app, 0), memory.get(app, 0))
    return Sample(now, apps)


def point_between(before: Sample, after: Sample, app: str) -> ChartPoint:
    """The interval from `before` to `after` for `app`. Counters that went down (a deployment
    retired and its counters went with it) count as no change, never as negative. Pure."""
    old, new = before.apps.get(app, AppSample()), after.apps.get(app, AppSample())
    seconds = max(after.at - before.at, 1e-9)
    requests = _minus(new.requests, old.requests)
    latency = _minus(new.latency, old.latency)
    return ChartPoint(
        at=after.at,
        requests=tuple(count / seconds for count in requests),
        p50=quantile(latency, 0.5),
        p95=quantile(latency, 0.95),
        starts=_minus(new.starts, old.starts),
        instances=new.instances,
        memory=new.memory,
    )


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The `q` quantile of latency bucket counts (per bucket, LATENCY_BUCKETS plus one slower),
    interpolated linearly inside its bucket as Prometheus' histogram_quantile does. Pure."""
    total = sum(counts)
    if total == 0:
        return None
    rank, running, lower = q * total, 0, 0.0
    for index, count in enumerate(counts):
        upper = LATENCY_BUCKETS[index] if index < len(LATENCY_BUCKETS) else LATENCY_BUCKETS[-1]
        if count and running + count >= rank:
            return lower + (upper - lower) * (rank - running) / count
        running += count
        lower = upper
    return LATENCY_BUCKETS[-1]


class History:
    """The ring buffer and where its samples come from (the edge's counters, the runtime's
    instances, deployment -> app). The daemon calls `record` every SAMPLE_SECONDS with the memory
    it measured; `chart` and `rates` add a live sample of the counters (memory as last measured)::

        history.record(time.time(), {"blog": 48_000_000})
        history.chart("blog", time.time())  # the last hour, the live moment last
    """

    def __init__(
        self,
        counters: Callable[[], Iterable[EdgeCounters]],
        instances: Callable[[], Iterable[InstanceInfo]],
        apps_of: Callable[[], Mapping[DeploymentId, str]],
        window: float = WINDOW_SECONDS,
        every: float = SAMPLE_SECONDS,
    ) -> None:
        self._counters = counters
        self._instances = instances
        self._apps_of = apps_of
        self._memory: Mapping[str, int] = {}
        self.samples: deque[Sample] = deque(maxlen=int(window / every) + 1)

    def sample(self, now: float, memory: Mapping[str, int] | None = None) -> Sample:
        """The counters now; `memory` measured now, else as last recorded."""
        return sample_of(now, self._counters(), self._apps_of(), self._instances(), memory or self._memory)

    def record(self, now: float, memory: Mapping[str, int]) -> None:
        self._memory = memory
        self.samples.append(self.sample(now))

    async def sample_forever(self, memory: Callable[[], Awaitable[Mapping[str, int]]]) -> None:
        """Every SAMPLE_SECONDS, one sample, with each app's memory as `memory` measures it now."""
        while True:
            self.record(time.time(), await memory())
            await asyncio.sleep(SAMPLE_SECONDS)

    def chart(self, app: str, now: float, memory: Mapping[str, int] | None = None) -> list[ChartPoint]:
        """One point per recorded interval, and one from the last sample to now (with `memory`
        when the caller has just measured it)."""
        live = self.sample(now, memory)
        samples = [*self.samples, live] if not self.samples or live.at > self.samples[-1].at else list(self.samples)
        return [point_between(a, b, app) for a, b in pairwise(samples)]

    def rates(self, app: str, now: float) -> Rates:
        """Requests per second, p95 and error rate over the last RATE_WINDOW_SECONDS or so."""
        live = self.sample(now)
        base = next((s for s in reversed(self.samples) if live.at - s.at >= RATE_WINDOW_SECONDS), None)
        if base is None:
            base = self.samples[0] if self.samples else Sample(live.at)
        if base.at >= live.at:
            return Rates(0.0, None, None)
        point = point_between(base, live, app)
        rps = sum(point.requests)
        return Rates(rps, point.p95, point.requests[4] / rps if rps else None)


def _plus(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _minus(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    return tuple(max(0, x - y) for x, y in zip(a, b, strict=True))
