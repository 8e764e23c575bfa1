"""Prometheus metrics, gathered at scrape time from what the daemon already keeps.

Nothing here is on the request path: the edge keeps plain counters, the
runtime its instance table, the recorder its event tallies; `render()` reads
them when /metrics is scraped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from roost.edge.counters import LATENCY_BUCKETS, EdgeCounters
from roost.model import DeploymentId, InstanceState
from roost.runtime.protocol import InstanceInfo

BUILD_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class Tallies:
    """Counts of runtime and build happenings, fed from the event stream."""

    def __init__(self) -> None:
        self.events: Counter[tuple[str, str]] = Counter()  # (app, kind)
        self.builds: dict[str, list[float]] = {}
        self.starts: Counter[tuple[str, str]] = Counter()  # (app, kind of start)
        self.start_seconds: dict[tuple[str, str], float] = {}

    def event(self, app: str, kind: str, data: Mapping[str, object]) -> None:
        self.events[(app, kind)] += 1
        seconds = data.get("seconds")
        if kind == "deploy.ready" and isinstance(seconds, int | float):
            self.builds.setdefault(app, []).append(float(seconds))
        if kind == "instance.ready" and isinstance(data.get("start_seconds"), int | float):
            key = (app, str(data.get("start_kind", "fresh")))
            self.starts[key] += 1
            self.start_seconds[key] = self.start_seconds.get(key, 0.0) + float(data["start_seconds"])  # type: ignore[arg-type]


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
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), c.latency, strict=True):
                cumulative += count
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            latency.add_metric(labels, buckets, c.latency_sum)
        yield from (requests, in_flight, queued, latency, by_start)

    def _runtime(self) -> Iterator[Metric]:
        by_state: Counter[tuple[str, str, str]] = Counter()
        restarts: Counter[tuple[str, str]] = Counter()
        for info in self._instances():
            by_state[(info.app, info.deployment, info.state.value)] += 1
            restarts[(info.app, info.deployment)] += info.restarts
        gauge = GaugeMetricFamily("roost_instances", "Instances by state", labels=["app", "deployment", "state"])
        for (app, deployment, state), count in sorted(by_state.items()):
            gauge.add_metric([app, deployment, state], count)
        for app, deployment in {(a, d) for a, d, _ in by_state}:
            for state in InstanceState:
                if (app, deployment, state.value) not in by_state:
                    gauge.add_metric([app, deployment, state.value], 0)
        yield gauge

    def _events(self) -> Iterator[Metric]:
        t = self._tallies
        restarts = CounterMetricFamily("roost_instance_restarts", "Instances restarted after a crash", labels=["app"])
        ooms = CounterMetricFamily(
            "roost_oom_kills", "Instances killed for exceeding their memory limit", labels=["app"]
        )
        crashes = CounterMetricFamily("roost_instance_crashes", "Instances that exited on their own", labels=["app"])
        for (app, kind), count in sorted(t.events.items()):
            {"instance.restarted": restarts, "instance.oom": ooms, "instance.crashed": crashes}.get(
                kind, _NULL
            ).add_metric([app], count)
        cold = CounterMetricFamily("roost_cold_starts", "Instances started, by kind", labels=["app", "kind"])
        cold_seconds = CounterMetricFamily("roost_cold_start_seconds", "Total start latency", labels=["app", "kind"])
        for (app, kind), count in sorted(t.starts.items()):
            cold.add_metric([app, kind], count)
            cold_seconds.add_metric([app, kind], t.start_seconds[(app, kind)])
        builds = HistogramMetricFamily("roost_build_duration_seconds", "Push to ready", labels=["app"])
        for app, durations in sorted(t.builds.items()):
            buckets = [(str(b), sum(1 for d in durations if d <= b)) for b in BUILD_BUCKETS]
            builds.add_metric([app], [*buckets, ("+Inf", len(durations))], sum(durations))
        yield from (restarts, ooms, crashes, cold, cold_seconds, builds)


class _Null:
    def add_metric(self, *_: object) -> None:
        return None


_NULL = _Null()


def make_registry(collector: RoostCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(namespace="roost_daemon", registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
