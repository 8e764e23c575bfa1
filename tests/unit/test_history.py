"""The dashboard's last hour: sums per app, intervals, quantiles from buckets, the ring's bound."""

from __future__ import annotations

import pytest

from roost.edge.counters import LATENCY_BUCKETS, EdgeCounters
from roost.history import AppSample, History, Sample, point_between, quantile, sample_of
from roost.model import AppName, DeploymentId, InstanceId, InstanceState
from roost.runtime.protocol import InstanceInfo, StartKind

BUCKETS = len(LATENCY_BUCKETS) + 1


def counters(deployment: str, ok: int = 0, errors: int = 0, fast: int = 0, slow: int = 0, hot: int = 0) -> EdgeCounters:
    latency = [0] * BUCKETS
    latency[LATENCY_BUCKETS.index(0.01)] = fast  # answered within 10 ms
    latency[LATENCY_BUCKETS.index(1.0)] = slow  # within one second
    return EdgeCounters(
        deployment=DeploymentId(deployment),
        in_flight=0,
        queued=0,
        requests_1xx=0,
        requests_2xx=ok,
        requests_3xx=0,
        requests_4xx=0,
        requests_5xx=errors,
        latency=tuple(latency),
        latency_sum=0.0,
        last_request_at=None,
        starts=(("cold", 0), ("warm", 1), ("hot", hot)),
    )


def instance(app: str, state: InstanceState) -> InstanceInfo:
    return InstanceInfo(
        InstanceId("i1"), AppName(app), DeploymentId("d1"), state, "127.0.0.1", 20000, 1, 0.0, StartKind.FORK
    )


def test_a_sample_sums_an_apps_deployments_and_counts_its_ready_instances() -> None:
    apps_of = {DeploymentId("d1"): "blog", DeploymentId("d2"): "blog", DeploymentId("d3"): "shop"}
    found = sample_of(
        5.0,
        [counters("d1", ok=3, fast=3), counters("d2", ok=1, errors=1, slow=2), counters("gone", ok=9)],
        apps_of,
        [instance("blog", InstanceState.READY), instance("blog", InstanceState.STARTING)],
        {"blog": 1000, "shop": 50},
    )
    blog = found.apps["blog"]
    assert blog.requests == (0, 4, 0, 0, 1)
    assert sum(blog.latency) == 5
    assert blog.starts == (0, 2, 0)
    assert (blog.instances, blog.memory) == (1, 1000)
    assert found.apps["shop"] == AppSample(memory=50)  # measured, nothing answered yet
    assert set(found.apps) == {"blog", "shop"}  # the deployment no app owns is left out


def test_an_interval_is_rates_per_second_and_never_negative() -> None:
    before = Sample(100.0, {"blog": AppSample(requests=(0, 10, 0, 0, 5), starts=(1, 1, 1))})
    after = Sample(110.0, {"blog": AppSample(requests=(0, 30, 0, 0, 2), starts=(1, 3, 9), instances=2, memory=7)})
    point = point_between(before, after, "blog")
    assert point.requests == pytest.approx((0.0, 2.0, 0.0, 0.0, 0.0))  # 5xx went down: a deployment retired
    assert point.starts == (0, 2, 8)
    assert (point.at, point.instances, point.memory) == (110.0, 2, 7)
    assert point.p50 is None and point.p95 is None  # no request in the interval


def test_quantiles_interpolate_inside_their_bucket() -> None:
    counts = [0] * BUCKETS
    counts[LATENCY_BUCKETS.index(0.01)] = 90  # (0.005, 0.01]
    counts[LATENCY_BUCKETS.index(1.0)] = 10  # (0.5, 1.0]
    assert quantile(counts, 0.5) == pytest.approx(0.005 + 0.005 * 50 / 90)
    assert quantile(counts, 0.95) == pytest.approx(0.5 + 0.5 * 5 / 10)
    assert quantile([0] * BUCKETS, 0.5) is None
    slower = [0] * BUCKETS
    slower[-1] = 1  # slower than the last bound: reported as the last bound
    assert quantile(slower, 0.95) == LATENCY_BUCKETS[-1]


def test_the_history_keeps_an_hour_and_adds_the_live_moment() -> None:
    live: list[EdgeCounters] = [counters("d1")]
    history = History(lambda: live, lambda: [], lambda: {DeploymentId("d1"): "blog"}, window=60.0, every=10.0)
    for step in range(10):
        live = [counters("d1", ok=step * 10, fast=step * 10)]
        history.record(step * 10.0, {"blog": 100 + step})
    assert len(history.samples) == 7  # 60 s of samples every 10 s, both ends kept
    live = [counters("d1", ok=120, fast=120)]
    points = history.chart("blog", 100.0)
    assert [p.at for p in points] == [40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]
    assert points[-1].requests[1] == pytest.approx(3.0)  # (120 - 90) / 10 s
    assert points[-1].memory == 109  # as last measured
    assert history.chart("blog", 100.0, {"blog": 555})[-1].memory == 555  # measured just now
    rates = history.rates("blog", 100.0)
    assert rates.rps == pytest.approx((120 - 70) / 30.0)  # from the newest sample at least 30 s old
    assert rates.error_rate == 0.0
    assert rates.p95 is not None and rates.p95 <= 0.01
    assert history.rates("nobody", 100.0).error_rate is None
