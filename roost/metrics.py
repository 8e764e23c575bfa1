"""Prometheus metrics, gathered at scrape time from what the daemon already keeps.

Nothing here is on the request path: the edge keeps plain counters, the
runtime its instance table, the recorder its event tallies; `render()` reads
them when /metrics is scraped. Tallies read the events the runtime and the
deploy use cases really emit (`instance.started`, `instance.ready`,
`instance.crashed`, `deploy.ready`, `deploy.failed`), by app and deployment.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from roost.edge.counters import LATENCY_BUCKETS, EdgeCounters
from roost.model import DeploymentId, InstanceState
from roost.runtime.protocol import InstanceInfo

BUILD_BUCKETS: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
START_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Key = tuple[str, str]  # (app, deployment)


@dataclass(slots=True)
class Histogram:
    """Counts per bucket (not cumulative; one more for slower), as the edge keeps latency."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs ending with +Inf, as HistogramMetricFamily wants them."""
        return _cumulative(self.bounds, self.counts)


def _cumulative(bounds: Iterable[float], counts: Iterable[int]) -> list[tuple[str, float]]:
    running, out = 0, list[tuple[str, float]]()
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        running += count
        out.append(("+Inf" if bound == float("inf") else str(bound), running))
    return out


class Tallies:
    """Counts of runtime and build happenings, fed from the event stream (`event()` per stored event)."""

    def __init__(self) -> None:
        self.crashes: Counter[Key] = Counter()
        self.ooms: Counter[Key] = Counter()
        self.restarts: Counter[Key] = Counter()
        self.starts: dict[tuple[str, str, str], Histogram] = {}  # (app, deployment, kind of start)
        self.builds: dict[tuple[str, str, str], Histogram] = {}  # (app, deployment, outcome)
        self.certificates: Counter[tuple[str, str, str]] = Counter()  # (app, host, outcome)

    def event(self, app: str, kind: str, data: Mapping[str, object]) -> None:
        key = (app, str(data.get("deployment", "")))
        if kind == "instance.crashed":
            self.crashes[key] += 1
            if data.get("out_of_memory"):
                self.ooms[key] += 1
        elif kind == "instance.started" and _number(data.get("restarts")):
            self.restarts[key] += 1  # a replacement after a crash (restarts is the crash streak)
        elif kind == "instance.ready" and (seconds := _number(data.get("seconds"))) is not None:
            start = (*key, str(data.get("start_kind", "fresh")))
            self.starts.setdefault(start, Histogram(START_BUCKETS)).observe(seconds)
        elif kind in ("certificate.issued", "certificate.renewed", "certificate.failed"):
            self.certificates[(app, str(data.get("host", "")), kind.removeprefix("certificate."))] += 1
        elif kind in ("deploy.ready", "deploy.failed") and (seconds := _number(data.get("seconds"))) is not None:
            build = (*key, kind.removeprefix("deploy."))
            self.builds.setdefault(build, Histogram(BUILD_BUCKETS)).observe(seconds)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class RoostCollector(Collector):
    def __init__(
        self,
        counters: Callable[[], Iterable[EdgeCounters]],
        instances: Callable[[], Iterable[InstanceInfo]],
        apps_of: Callable[[], Mapping[DeploymentId, str]],
        tallies: Tallies,
    ) -> None:
        self._counters = counters
        self._instances = instances
        self._apps_of = apps_of
        self._tallies = tallies

    def collect(self) -> Iterator[Metric]:
        yield from self._edge()
        yield from self._runtime()
        yield from self._events()

    def _edge(self) -> Iterator[Metric]:
        apps = self._apps_of()
        requests = CounterMetricFamily(
            "roost_requests", "Requests answered by the edge", labels=["app", "deployment", "code"]
        )
        in_flight = GaugeMetricFamily("roost_requests_in_flight", "Requests being served", labels=["app", "deployment"])
        queued = GaugeMetricFamily(
            "roost_requests_queued", "Requests waiting in the activator", labels=["app", "deployment"]
        )
        latency = HistogramMetricFamily(
            "roost_request_duration_seconds", "Time to answer", labels=["app", "deployment"]
        )
        by_start = CounterMetricFamily(
            "roost_requests_by_start",
            "Requests forwarded, by X-Roost-Start: cold (waited for an import), warm (a fork), hot (ready)",
            labels=["app", "deployment", "start"],
        )
        for c in self._counters():
            labels = [apps.get(c.deployment, ""), c.deployment]
            for code, count in (
                ("1xx", c.requests_1xx),
                ("2xx", c.requests_2xx),
                ("3xx", c.requests_3xx),
                ("4xx", c.requests_4xx),
                ("5xx", c.requests_5xx),
            ):
                requests.add_metric([*labels, code], count)
            for start, count in c.starts:
                by_start.add_metric([*labels, start], count)
            in_flight.add_metric(labels, c.in_flight)
            queued.add_metric(labels, c.queued)
            latency.add_metric(labels, _cumulative(LATENCY_BUCKETS, c.latency), c.latency_sum)
        yield from (requests, in_flight, queued, latency, by_start)

    def _runtime(self) -> Iterator[Metric]:
        """Instances by state now; every state of a known deployment appears, at 0 if none is in it."""
        by_state: Counter[tuple[str, str, str]] = Counter()
        for info in self._instances():
            by_state[(info.app, info.deployment, info.state.value)] += 1
        gauge = GaugeMetricFamily("roost_instances", "Instances by state", labels=["app", "deployment", "state"])
        for app, deployment in sorted({(a, d) for a, d, _ in by_state}):
            for state in InstanceState:
                gauge.add_metric([app, deployment, state.value], by_state[(app, deployment, state.value)])
        yield gauge

    def _events(self) -> Iterator[Metric]:
        t = self._tallies
        labels = ["app", "deployment"]
        restarts = CounterMetricFamily(
            "roost_instance_restarts", "Instances started again after a crash", labels=labels
        )
        ooms = CounterMetricFamily(
            "roost_oom_kills", "Instances killed for exceeding their memory limit", labels=labels
        )
        crashes = CounterMetricFamily(
            "roost_instance_crashes", "Instances that ended without being asked", labels=labels
        )
        for family, counts in ((restarts, t.restarts), (ooms, t.ooms), (crashes, t.crashes)):
            for pair, count in sorted(counts.items()):
                family.add_metric(list(pair), count)
        cold = CounterMetricFamily(
            "roost_cold_starts",
            "Instances started, by kind (fresh: a full import, fork: from the zygote)",
            labels=[*labels, "kind"],
        )
        cold_seconds = HistogramMetricFamily(
            "roost_cold_start_seconds", "Time from spawn to ready, by kind of start", labels=[*labels, "kind"]
        )
        for key, histogram in sorted(t.starts.items()):
            cold.add_metric(list(key), sum(histogram.counts))
            cold_seconds.add_metric(list(key), histogram.buckets(), histogram.total)
        builds = HistogramMetricFamily(
            "roost_build_duration_seconds", "Push to ready or failed, by outcome", labels=[*labels, "outcome"]
        )
        for key, histogram in sorted(t.builds.items()):
            builds.add_metric(list(key), histogram.buckets(), histogram.total)
        certificates = CounterMetricFamily(
            "roost_certificate_attempts",
            "ACME certificate attempts per custom domain, by outcome (issued, renewed, failed)",
            labels=["app", "host", "outcome"],
        )
        for triple, count in sorted(t.certificates.items()):
            certificates.add_metric(list(triple), count)
        yield from (restarts, ooms, crashes, cold, cold_seconds, builds, certificates)


def make_registry(collector: RoostCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(namespace="roost_daemon", registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
