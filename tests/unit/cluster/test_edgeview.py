"""EdgeView's and LocalOnly's choices of a slot, on a stand-in local runtime and a fake clock:
this machine first, then a peer node's door (own region, least loaded, not full, not lately
unreachable), then the head's public edge; and who asks for capacity."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from roost.cluster.contract import ClusterMap, Serving
from roost.cluster.edgeview import UNREACHABLE_FOR, EdgeView, LocalOnly, Peer, choose_peer, split_address
from roost.edge import RouteTable
from roost.model import AppName, DeploymentId, InstanceId, InstanceState
from roost.runtime.protocol import InstanceInfo, RuntimeListener, Slot, StartKind
from tests.unit.edge.harness import route, table

DEP = DeploymentId("dep00001")
OTHER = DeploymentId("dep00002")


@dataclass
class LocalSlots:
    """The local runtime as a view sees it: `free` slots per deployment, and what it was asked."""

    free: dict[DeploymentId, int] = field(default_factory=dict)
    listeners: list[RuntimeListener] = field(default_factory=list)
    asks: list[tuple[DeploymentId, int, str]] = field(default_factory=list)
    running: tuple[DeploymentId, ...] = ()  # deployments with a ready instance here

    def subscribe(self, listener: RuntimeListener) -> None:
        self.listeners.append(listener)

    def try_acquire(self, deployment: DeploymentId) -> Slot | None:
        if self.free.get(deployment, 0) <= 0:
            return None
        self.free[deployment] -= 1
        return Slot(InstanceId("ilocal1"), deployment, "127.0.0.1", 9, StartKind.FORK, self._release)

    def _release(self, slot: Slot) -> None:
        self.free[slot.deployment] += 1

    def request_capacity(self, deployment: DeploymentId, slots: int, region: str = "") -> None:
        self.asks.append((deployment, slots, region))

    def instances(self, deployment: DeploymentId | None = None) -> list[InstanceInfo]:
        return [
            InstanceInfo(
                InstanceId(f"i{dep}"), AppName("app"), dep, InstanceState.READY, "127.0.0.1", 9, 1, 0.0, StartKind.FORK
            )
            for dep in self.running
            if deployment in (None, dep)
        ]


@dataclass
class Heard:
    """A listener that notes which deployments had capacity news."""

    capacity: list[DeploymentId] = field(default_factory=list)
    failed: list[tuple[DeploymentId, str, int | None]] = field(default_factory=list)

    def instance_changed(self, info: InstanceInfo) -> None:
        pass

    def capacity_changed(self, deployment: DeploymentId) -> None:
        self.capacity.append(deployment)

    def start_failed(self, deployment: DeploymentId, reason: str, retry_after: int | None = None) -> None:
        self.failed.append((deployment, reason, retry_after))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def serving(node: str, region: str, port: int, ready: int = 1, concurrency: int = 2) -> Serving:
    return Serving(node, region, f"10.0.0.{port % 250}:{port}", ready, concurrency)


def cluster_map(version: int, serving_of: dict[DeploymentId, tuple[Serving, ...]], head: str = "") -> ClusterMap:
    return ClusterMap(version, RouteTable(domain="localhost"), serving_of, head)


def view_of(
    local: LocalSlots,
    *,
    node: str = "a",
    region: str = "eu",
    is_head: bool = False,
    activated: list[tuple[DeploymentId, int, str]] | None = None,
) -> tuple[EdgeView, Clock]:
    clock = Clock()
    activate = None if activated is None else (lambda dep, slots, where: activated.append((dep, slots, where)))
    view = EdgeView(local, node, region, activate, is_head, clock=clock)  # type: ignore[arg-type]
    return view, clock


def test_a_slot_of_this_machine_comes_first() -> None:
    local = LocalSlots({DEP: 1})
    view, _ = view_of(local)
    view.show(cluster_map(1, {DEP: (serving("b", "eu", 8001),)}, head="10.0.0.9:80"))
    first = view.try_acquire(DEP)
    assert first is not None and (first.node, first.instance) == ("", InstanceId("ilocal1"))
    second = view.try_acquire(DEP)
    assert second is not None and second.node == "b"


def test_a_peer_slot_names_the_peer_its_door_and_the_deployment_chosen_here() -> None:
    view, _ = view_of(LocalSlots())
    view.show(cluster_map(1, {DEP: (serving("b", "us", 8001),)}))
    slot = view.try_acquire(DEP)
    assert slot is not None
    assert (slot.node, slot.instance, slot.host, slot.port) == ("b", InstanceId("peer:b:" + DEP), "10.0.0.1", 8001)
    assert slot.headers == ((b"x-roost-deployment", b"dep00001"),)
    assert slot.start_kind is StartKind.FORK


def test_own_region_first_then_the_least_loaded_and_never_a_full_one() -> None:
    view, _ = view_of(LocalSlots(), region="eu")
    view.show(
        cluster_map(
            1,
            {
                DEP: (
                    serving("us1", "us", 8001, ready=5),
                    serving("eu1", "eu", 8002, ready=1, concurrency=1),
                    serving("eu2", "eu", 8003, ready=1, concurrency=2),
                )
            },
        )
    )
    picked = [view.try_acquire(DEP) for _ in range(4)]
    # eu1 and eu2 tie at 0 load (eu1 listed first); then eu2 (0.0 < eu1's 1.0); then eu2 is
    # half-full and eu1 full: eu2; then both full: the other region
    assert [s.node if s else None for s in picked] == ["eu1", "eu2", "eu2", "us1"]
    picked[0].release()  # type: ignore[union-attr]
    again = view.try_acquire(DEP)
    assert again is not None and again.node == "eu1"


def test_a_view_never_forwards_to_itself() -> None:
    view, _ = view_of(LocalSlots(), node="a")
    view.show(cluster_map(1, {DEP: (serving("a", "eu", 8001),)}))
    assert view.try_acquire(DEP) is None


def test_an_unreachable_peer_is_left_alone_for_a_while() -> None:
    view, clock = view_of(LocalSlots())
    view.show(cluster_map(1, {DEP: (serving("eu1", "eu", 8001), serving("us1", "us", 8002))}))
    slot = view.try_acquire(DEP)
    assert slot is not None and slot.node == "eu1"
    slot.unreachable()
    slot.release()
    assert view.is_unreachable("eu1")
    other = view.try_acquire(DEP)
    assert other is not None and other.node == "us1"
    clock.now += UNREACHABLE_FOR + 0.1
    assert not view.is_unreachable("eu1")
    back = view.try_acquire(DEP)
    assert back is not None and back.node == "eu1"


def test_a_node_falls_back_to_the_heads_edge_with_its_region() -> None:
    view, _ = view_of(LocalSlots(), region="eu")
    view.show(cluster_map(1, {}, head="10.0.0.9:8080"))
    slot = view.try_acquire(DEP)
    assert slot is not None
    assert (slot.node, slot.host, slot.port) == ("head", "10.0.0.9", 8080)
    assert slot.headers == ((b"x-roost-deployment", b"dep00001"), (b"x-roost-region", b"eu"))
    assert slot.instance != InstanceId("peer:head")  # a retry must be able to move off the head's door


def test_the_head_never_forwards_to_its_own_edge() -> None:
    view, _ = view_of(LocalSlots(), node="head", is_head=True)
    view.show(cluster_map(1, {}, head="10.0.0.9:8080"))
    assert view.try_acquire(DEP) is None


def test_nothing_before_the_first_map() -> None:
    view, _ = view_of(LocalSlots())
    assert view.try_acquire(DEP) is None


def test_an_older_map_is_ignored() -> None:
    view, _ = view_of(LocalSlots())
    view.show(cluster_map(5, {DEP: (serving("b", "eu", 8001),)}))
    view.show(cluster_map(4, {}))
    assert view.map is not None and view.map.version == 5
    slot = view.try_acquire(DEP)
    assert slot is not None and slot.node == "b"


def test_waiters_hear_of_deployments_that_gained_slots_only() -> None:
    local = LocalSlots()
    view, _ = view_of(local)
    heard = Heard()
    view.subscribe(heard)
    assert local.listeners == [heard]  # the local runtime's own events reach it too
    view.show(cluster_map(1, {DEP: (serving("b", "eu", 8001),), OTHER: (serving("b", "eu", 8001),)}))
    assert sorted(heard.capacity) == [DEP, OTHER]
    heard.capacity.clear()
    view.show(cluster_map(2, {DEP: (serving("b", "eu", 8001, ready=2),), OTHER: (serving("b", "eu", 8001),)}))
    assert heard.capacity == [DEP]
    heard.capacity.clear()
    slot = view.try_acquire(DEP)
    assert slot is not None
    slot.release()
    assert heard.capacity == [DEP]  # a peer slot back: a waiter may take it


def test_only_the_head_asks_for_capacity_with_the_demands_region() -> None:
    activated: list[tuple[DeploymentId, int, str]] = []
    head, _ = view_of(LocalSlots(), node="head", region="us", is_head=True, activated=activated)
    head.request_capacity(DEP, 3, "eu")
    head.request_capacity(DEP, 4, "")
    head.request_capacity(DEP, 5, "Not A Region!")
    assert activated == [(DEP, 3, "eu"), (DEP, 4, "us"), (DEP, 5, "us")]
    local = LocalSlots()
    node, _ = view_of(local)
    node.request_capacity(DEP, 3, "eu")
    assert local.asks == []  # the node's requests went on to the head's edge


async def test_local_only_takes_this_machines_slots_and_asks_nobody() -> None:
    local = LocalSlots({DEP: 1}, running=(DEP,))
    door = LocalOnly(local)  # type: ignore[arg-type]
    heard = Heard()
    door.subscribe(heard)
    slot = door.try_acquire(DEP)
    assert slot is not None and slot.node == ""
    assert door.try_acquire(DEP) is None
    door.request_capacity(DEP, 2, "eu")  # its instance is busy: wait for it
    await asyncio.sleep(0)
    assert local.asks == [] and heard.failed == []
    assert [i.deployment for i in door.instances()] == [DEP]  # the rest is the local runtime's


async def test_local_only_refuses_at_once_what_no_longer_runs_here() -> None:
    other = DeploymentId("dep00002")
    door = LocalOnly(LocalSlots({}, running=(DEP,)))  # type: ignore[arg-type]
    heard = Heard()
    door.subscribe(heard)
    door.request_capacity(other, 1, "eu")
    assert heard.failed == []  # never inside the caller's own call
    await asyncio.sleep(0)
    assert heard.failed == [(other, "no instance of it runs on this machine any more", 1)]


def test_choose_peer_is_pure() -> None:
    peers = [Peer(serving("x", "eu", 8001, ready=1, concurrency=4), DEP), Peer(serving("y", "eu", 8002, ready=0), DEP)]
    assert choose_peer(peers, "eu", {"x": 4}, {}, 0.0) is None  # x full, y has no slots
    assert choose_peer(peers, "eu", {"x": 3}, {}, 0.0) is peers[0]
    assert choose_peer(peers, "eu", {}, {"x": 10.0}, 5.0) is None
    assert choose_peer(peers, "eu", {}, {"x": 10.0}, 10.5) is peers[0]


def test_split_address() -> None:
    assert split_address("10.1.2.3:8081") == ("10.1.2.3", 8081)
    assert split_address("[fd00::1]:80") == ("fd00::1", 80)
    for bad in ("10.1.2.3", "10.1.2.3:", ":80", "host:0", "host:70000", "host:http"):
        with pytest.raises(ValueError):
            split_address(bad)


def test_a_malformed_door_is_skipped_not_fatal() -> None:
    view, _ = view_of(LocalSlots())
    broken = Serving("x", "eu", "no-port-here", 1, 2)
    view.show(cluster_map(1, {DEP: (broken, serving("b", "eu", 8001))}, head="nonsense"))
    slot = view.try_acquire(DEP)
    assert slot is not None and slot.node == "b"
    slot.release()
    view.show(cluster_map(2, {DEP: (broken,)}, head="nonsense"))
    assert view.try_acquire(DEP) is None  # neither the broken door nor a head edge that is not one


def test_a_node_wakes_every_waiter_once_the_heads_edge_is_known() -> None:
    view, _ = view_of(LocalSlots())
    heard = Heard()
    view.subscribe(heard)
    routes = table(route("hello", [(DEP, 100)], previews=(OTHER,)))
    view.show(ClusterMap(1, routes, {}, ""))
    assert heard.capacity == []
    view.show(ClusterMap(2, routes, {}, "10.0.0.9:8080"))
    assert heard.capacity == [DEP, OTHER]  # they may go to the head's edge now
    heard.capacity.clear()
    view.show(ClusterMap(3, routes, {}, "10.0.0.9:8080"))
    assert heard.capacity == []
