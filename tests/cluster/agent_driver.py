"""A Ray driver that plays the head's part against one node, through the agent actor as the head
will: `python -m tests.cluster.agent_driver GCS NODE ARCHIVE DIGEST APP DEPLOYMENT`, run in the
head's namespace with the cluster's token (RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH). Prints one JSON
object: what each step saw. Bounded: every wait has a deadline."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from roost.cluster.agent import NodeAgent
from roost.cluster.contract import Artifact, Assignment, ClusterMap, NodeReport
from roost.edge.routes import AppRoute, RouteTable
from roost.model import AppConfig, AppName, DeploymentId, InstanceState

TIMEOUT_READY = 120.0
LIVE = (InstanceState.STARTING, InstanceState.READY)
TIMEOUT_CALL = 600.0  # prepare builds (uv) on a busy machine


def ray_node_id(name: str) -> str:
    for node in ray.nodes():
        if node["Alive"] and node.get("Labels", {}).get("roost-node") == name:
            return str(node["NodeID"])
    raise RuntimeError(f"no live Ray node labelled {name}: {ray.nodes()}")


def pinned(name: str) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(ray_node_id(name), soft=False)


@ray.remote(num_cpus=0)
def socket_env() -> str | None:
    """What a Ray worker on the machine it runs on was told of its daemon's agent socket."""
    return os.environ.get("ROOST_AGENT_SOCKET")


def ready_instances(report: NodeReport, deployment: DeploymentId) -> list[Any]:
    return [i for i in report.instances if i.deployment == deployment and i.state is InstanceState.READY]


def live(report: NodeReport, deployment: DeploymentId) -> list[Any]:
    return [i for i in report.instances if i.deployment == deployment and i.state in LIVE]


def until(agent: Any, condition: Callable[[NodeReport], bool]) -> NodeReport:
    """Reports until one meets `condition` (each report's events are the ones since the last: kept
    in the returned one's, merged); RuntimeError at the deadline."""
    deadline = time.monotonic() + TIMEOUT_READY
    events: list[Any] = []
    while True:
        report = ray.get(agent.report.remote(), timeout=TIMEOUT_CALL)
        events += report.events
        if condition(report):
            return dataclasses.replace(report, events=tuple(events))
        if time.monotonic() > deadline:
            raise RuntimeError(f"no report met the condition within {TIMEOUT_READY}s: {report}")
        time.sleep(0.2)


def report_round_trips(agent: Any, rounds: int = 21) -> list[float]:
    """Milliseconds of `report()` from this driver through the actor and the socket: median, max."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        ray.get(agent.report.remote(), timeout=TIMEOUT_CALL)
        times.append((time.perf_counter() - started) * 1000)
    return [statistics.median(times), max(times)]


def route_table(app: AppName, deployment: DeploymentId) -> RouteTable:
    route = AppRoute(app, ((deployment, 100),), frozenset({deployment}), False, 5.0, 10 * 1024**2, True)
    return RouteTable("localhost", {app: route})


def get(door: str, host: str) -> dict[str, Any]:
    address, _, port = door.rpartition(":")
    connection = http.client.HTTPConnection(address, int(port), timeout=30)
    try:
        connection.request("GET", "/", headers={"Host": host})
        response = connection.getresponse()
        return {"status": response.status, "body": response.read().decode(errors="replace")}
    finally:
        connection.close()


def main(gcs: str, node: str, archive_path: str, digest: str, app_name: str, deployment_id: str) -> dict[str, Any]:
    app, deployment = AppName(app_name), DeploymentId(deployment_id)
    seen: dict[str, Any] = {}
    ray.init(address=gcs, logging_level="WARNING", log_to_driver=False)
    agent_class = ray.remote(num_cpus=0, max_concurrency=16)(NodeAgent)
    agent = agent_class.options(scheduling_strategy=pinned(node)).remote()  # type: ignore[attr-defined]

    seen["socket_env"] = {
        name: ray.get(socket_env.options(scheduling_strategy=pinned(name)).remote(), timeout=TIMEOUT_CALL)
        for name in (node, "head")
    }
    identity = ray.get(agent.hello.remote(), timeout=TIMEOUT_CALL)
    seen["hello"] = {"name": identity.name, "region": identity.region, "door": identity.door}
    artifact = Artifact(app, deployment, digest, AppConfig(name=app_name, entrypoint="handler:handler"))
    archive = Path(archive_path).read_bytes()
    both = [agent.prepare.remote(artifact, archive) for _ in range(2)]  # at once: one build, the other waits
    seen["prepare_seconds"] = sorted(ray.get(both, timeout=TIMEOUT_CALL))
    seen["prepare_again_seconds"] = ray.get(agent.prepare.remote(artifact, archive), timeout=TIMEOUT_CALL)
    try:
        ray.get(agent.prepare.remote(artifact, archive + b"x"), timeout=TIMEOUT_CALL)
    except Exception as exc:  # noqa: BLE001 - what crossed Ray is the point
        seen["mismatch"] = {"type": type(exc).__name__, "message": str(exc)}
    ray.get(agent.show.remote(ClusterMap(1, route_table(app, deployment), {}, "unused:8080")), timeout=TIMEOUT_CALL)
    ray.get(agent.assign.remote(Assignment(deployment, 1)), timeout=TIMEOUT_CALL)

    report = until(agent, lambda r: len(ready_instances(r, deployment)) == 1)
    ready = ready_instances(report, deployment)
    seen["ready"] = [{"id": i.id, "pid": i.pid, "port": i.port} for i in ready]
    seen["prepared"] = sorted(report.prepared)
    seen["answer"] = get(identity.door, f"{app_name}.localhost")
    isolation = ray.get(agent.isolation.remote(deployment), timeout=TIMEOUT_CALL)
    seen["isolation"] = {i: {"uid": x.identity.uid[1], "errors": list(x.errors)} for i, x in isolation.items()}
    after_get = ray.get(agent.report.remote(), timeout=TIMEOUT_CALL)
    seen["demand_after"] = {d: [x.waiting, x.last_request_at is not None] for d, x in after_get.demand.items()}
    events = [*report.events, *after_get.events]

    ray.get(agent.assign.remote(Assignment(deployment, 2)), timeout=TIMEOUT_CALL)
    report = until(agent, lambda r: len(ready_instances(r, deployment)) == 2)
    events += report.events
    seen["raised_to_2"] = len(ready_instances(report, deployment))
    ray.get(agent.assign.remote(Assignment(deployment, 1)), timeout=TIMEOUT_CALL)
    report = until(agent, lambda r: len(live(r, deployment)) == 1)
    events += report.events
    seen["lowered_to_1"] = [i.pid for i in live(report, deployment)]

    crashed = live(report, deployment)[0]
    os.kill(crashed.pid, signal.SIGKILL)  # the node keeps its count: a crashed instance is started again
    report = until(agent, lambda r: [i.id for i in ready_instances(r, deployment)] not in ([], [crashed.id]))
    events += report.events
    seen["restarted"] = [{"id": i.id, "pid": i.pid} for i in ready_instances(report, deployment)]
    seen["crashed"] = {"id": crashed.id, "pid": crashed.pid}

    seen["report_ms"] = report_round_trips(agent)
    ray.get(agent.retire.remote(deployment), timeout=TIMEOUT_CALL)
    after = ray.get(agent.report.remote(), timeout=TIMEOUT_CALL)
    seen["after_retire"] = {"instances": len(after.instances), "prepared": sorted(after.prepared)}
    seen["events"] = [e.kind for e in [*events, *after.events]]
    ray.shutdown()
    return seen


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:7])), flush=True)
