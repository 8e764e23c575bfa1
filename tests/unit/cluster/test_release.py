"""Which instances a cluster gives back when it scales a deployment down: a region whose edges
ask for the deployment keeps its own instance while another region can give one."""

import time
from pathlib import Path
from typing import Any, cast

from roost.cluster.cluster_runtime import ClusterRuntime, _Deployment, _Node
from roost.cluster.contract import Artifact, Demand, NodeIdentity, NodeName, NodeReport
from roost.cluster.placement import Reservation
from roost.model import AppConfig, AppName, DeploymentId
from roost.runtime.protocol import DeploymentSpec

DEP = DeploymentId("d1234567")
MACHINES = {"h": "a", "n2": "a", "n3": "b"}  # node id -> region


def cluster(asking: set[str]) -> ClusterRuntime:
    """A head's runtime knowing three machines, those in `asking` with a request a moment ago."""
    runtime = ClusterRuntime(cast(Any, None), cast(Any, None), cast(Any, None), cast(Any, None), cast(Any, None), "")
    for node_id, region in MACHINES.items():
        identity = NodeIdentity(NodeName(node_id), region, f"{node_id}:8081", 1 << 30)
        demand = {DEP: Demand(0, time.time() - 1)} if node_id in asking else {}
        report = NodeReport(identity, (), demand, (), frozenset())
        runtime._nodes[node_id] = _Node(node_id, identity, report)
    return runtime


def deployment(runtime: ClusterRuntime, placed: list[str | None]) -> _Deployment:
    spec = DeploymentSpec(AppName("a"), DEP, Path("/c"), Path("/v"), AppConfig())
    entry = _Deployment(spec, Artifact(spec.app, DEP, "0" * 64, spec.config))
    for index, node_id in enumerate(placed):
        reservation = Reservation(f"pg{index}", 1 << 26, "")
        entry.reservations.append(reservation)
        entry.placed[reservation.id] = node_id
    runtime._deployments[DEP] = entry
    return entry


def released(runtime: ClusterRuntime, entry: _Deployment, count: int) -> list[str | None]:
    return [entry.placed[r.id] for r in runtime._surplus(entry, count)]


def test_a_region_that_asks_keeps_its_only_instance() -> None:
    runtime = cluster(asking={"n2", "n3"})
    entry = deployment(runtime, ["n3", "h", "n2"])
    assert released(runtime, entry, 1) == ["h"]


def test_a_region_nobody_asks_for_gives_its_instance_back_first() -> None:
    runtime = cluster(asking={"n2"})
    entry = deployment(runtime, ["h", "n3"])
    assert released(runtime, entry, 1) == ["n3"]


def test_the_machine_holding_most_gives_first_among_equals() -> None:
    runtime = cluster(asking={"h", "n3"})
    entry = deployment(runtime, ["h", "n2", "n2", "n3"])
    assert released(runtime, entry, 1) == ["n2"]
    assert "n3" not in released(runtime, entry, 3)


def test_unplaced_reservations_go_first_and_a_region_gives_its_last_when_it_must() -> None:
    runtime = cluster(asking={"h", "n3"})
    entry = deployment(runtime, [None, "h", "n3"])
    assert released(runtime, entry, 2)[0] is None
    assert sorted(str(node) for node in released(runtime, entry, 3)) == ["None", "h", "n3"]
