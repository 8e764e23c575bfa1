"""Metrics from the events the runtime and the deploy use cases really emit: sample values, not just families."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from roost.edge.counters import LATENCY_BUCKETS, EdgeCounters
from roost.metrics import RoostCollector, Tallies, make_registry, render
from roost.model import DeploymentId, InstanceId, InstanceState
from roost.runtime.protocol import InstanceInfo, StartKind

D1, D2 = DeploymentId("d1d1d1d1"), DeploymentId("d2d2d2d2")


def samples(
    tallies: Tallies, instances: list[InstanceInfo] | None = None
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    counters = [
        EdgeCounters(
            deployment=D1,
            in_flight=2,
            queued=1,
            requests_1xx=0,
            requests_2xx=5,
            requests_3xx=0,
            requests_4xx=1,
            requests_5xx=0,
            latency=(0, 3, *([0] * (len(LATENCY_BUCKETS) - 2)), 1),
            latency_sum=20.5,
            last_request_at=None,
            starts=(("cold", 1), ("hot", 4)),
        )
    ]
    collector = RoostCollector(lambda: counters, lambda: instances or [], lambda: {D1: "web", D2: "web"}, tallies)
    text = render(make_registry(collector)).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def crashed(deployment: str, oom: bool) -> dict[str, object]:
    """What keeper._crashed puts in an `instance.crashed` event."""
    return {
        "deployment": deployment,
        "instance": "i1",
        "status": "killed by SIGKILL",
        "streak": 1,
        "out_of_memory": oom,
    }


def test_crashes_ooms_and_restarts_by_app_and_deployment() -> None:
    tallies = Tallies()
    tallies.event("web", "instance.crashed", crashed(D1, oom=True))
    tallies.event("web", "instance.crashed", crashed(D1, oom=False))
    tallies.event("web", "instance.crashed", crashed(D2, oom=False))
    for restarts in (0, 1, 2):  # the first start is not a restart
        tallies.event(
            "web",
            "instance.started",
            {"deployment": D1, "instance": "i2", "pid": 9, "restarts": restarts, "start_kind": "fork"},
        )
    tallies.event("web", "instance.backoff", {"deployment": D1, "delay": 1.0, "streak": 1})
    got = samples(tallies)
    assert got[("roost_instance_crashes_total", labels(app="web", deployment=D1))] == 2
    assert got[("roost_instance_crashes_total", labels(app="web", deployment=D2))] == 1
    assert got[("roost_oom_kills_total", labels(app="web", deployment=D1))] == 1
    assert ("roost_oom_kills_total", labels(app="web", deployment=D2)) not in got
    assert got[("roost_instance_restarts_total", labels(app="web", deployment=D1))] == 2


def test_start_latency_is_a_histogram_by_kind() -> None:
    tallies = Tallies()
    for seconds, kind in ((0.004, "fork"), (0.03, "fork"), (1.5, "fresh")):
        tallies.event(
            "web", "instance.ready", {"deployment": D1, "instance": "i1", "seconds": seconds, "start_kind": kind}
        )
    got = samples(tallies)
    fork = labels(app="web", deployment=D1, kind="fork")
    assert got[("roost_cold_starts_total", fork)] == 2
    assert got[("roost_cold_start_seconds_count", fork)] == 2
    assert abs(got[("roost_cold_start_seconds_sum", fork)] - 0.034) < 1e-9
    assert got[("roost_cold_start_seconds_bucket", labels(app="web", deployment=D1, kind="fork", le="0.005"))] == 1
    assert got[("roost_cold_start_seconds_bucket", labels(app="web", deployment=D1, kind="fork", le="0.05"))] == 2
    fresh = labels(app="web", deployment=D1, kind="fresh", le="1.0")
    assert got[("roost_cold_start_seconds_bucket", fresh)] == 0
    assert got[("roost_cold_start_seconds_count", labels(app="web", deployment=D1, kind="fresh"))] == 1


def test_build_durations_count_failures_too() -> None:
    tallies = Tallies()
    tallies.event("web", "deploy.ready", {"deployment": D1, "seconds": 3.2})
    tallies.event("web", "deploy.failed", {"deployment": D2, "hint": "fix it", "seconds": 12.0})
    tallies.event("web", "deploy.failed", {"deployment": "d3d3d3d3"})  # marked failed at a restart: no duration
    got = samples(tallies)
    assert got[("roost_build_duration_seconds_count", labels(app="web", deployment=D1, outcome="ready"))] == 1
    assert got[("roost_build_duration_seconds_sum", labels(app="web", deployment=D1, outcome="ready"))] == 3.2
    failed = labels(app="web", deployment=D2, outcome="failed", le="10.0")
    assert got[("roost_build_duration_seconds_bucket", failed)] == 0
    assert got[("roost_build_duration_seconds_count", labels(app="web", deployment=D2, outcome="failed"))] == 1


def test_edge_and_instance_samples() -> None:
    ready = InstanceInfo(
        id=InstanceId("i1"),
        app="web",  # type: ignore[arg-type]
        deployment=D1,
        state=InstanceState.READY,
        host="127.0.0.1",
        port=1,
        pid=1,
        started_at=0.0,
        start_kind=StartKind.FORK,
    )
    got = samples(Tallies(), [ready, ready])
    web = labels(app="web", deployment=D1)
    assert got[("roost_requests_total", labels(app="web", deployment=D1, code="2xx"))] == 5
    assert got[("roost_requests_total", labels(app="web", deployment=D1, code="4xx"))] == 1
    assert got[("roost_requests_in_flight", web)] == 2
    assert got[("roost_requests_queued", web)] == 1
    assert got[("roost_requests_by_start_total", labels(app="web", deployment=D1, start="hot"))] == 4
    assert got[("roost_request_duration_seconds_count", web)] == 4
    assert got[("roost_request_duration_seconds_bucket", labels(app="web", deployment=D1, le="0.0025"))] == 3
    assert got[("roost_instances", labels(app="web", deployment=D1, state="ready"))] == 2
    assert got[("roost_instances", labels(app="web", deployment=D1, state="crashed"))] == 0
    assert any(name == "roost_daemon_process_resident_memory_bytes" for name, _ in got)
