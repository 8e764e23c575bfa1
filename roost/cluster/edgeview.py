"""An edge's runtime in a cluster: where a request's slot comes from when instances run on
several machines.

`EdgeView` (a node's public edge, and the head's) hands out, in this order: a slot on an
instance of this machine; else a place at a peer node's edge (its peer door) that serves the
deployment, own region first, least loaded by what this edge has sent it; else, on a node, a
place at the head's public edge, which starts an instance through the cluster runtime
("activation through the head"). `LocalOnly` is the peer door's: this machine's instances
only, and it never asks for capacity (the head alone decides where instances run), so a
forwarded request is never forwarded again. Neither starts or stops anything itself; what
they do not change goes to the node's `LocalRuntime` (`delegate.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from roost.cluster.cluster_settings import REGION_RE
from roost.cluster.contract import ClusterMap, NodeName, Serving
from roost.cluster.delegate import LocalDelegate
from roost.model import AppName, DeploymentId, InstanceId, InstanceState
from roost.runtime.protocol import InstanceInfo, Runtime, RuntimeListener, Slot, StartKind

log = logging.getLogger("roost.cluster")
LIVE = (InstanceState.STARTING, InstanceState.READY)
NOT_HERE = "no instance of it runs on this machine any more"
RETRY_NOT_HERE = 1  # seconds: the forwarding edge has the newer map by then
UNREACHABLE_FOR = 5.0  # seconds a peer that refused a connection gets no new requests from this edge
HEAD = "head"  # the head's node name (contract.NodeName)
PIN_HEADER = b"x-roost-deployment"  # the deployment this edge's split chose: the next edge serves it
REGION_HEADER = b"x-roost-region"  # where the demand comes from, for the head's placement
Headers = tuple[tuple[bytes, bytes], ...]
Activate = Callable[[DeploymentId, int, str], None]


def node_label(name: str, region: str) -> str:
    """X-Roost-Node's value for answers of this machine's instances: 'n1; region=eu'."""
    return f"{name}; region={region}"


class Peer:
    """One peer node's edge as this edge forwards to it, for one deployment (from a `Serving`)."""

    __slots__ = ("host", "instance", "node", "port", "region", "slots")

    def __init__(self, serving: Serving, deployment: DeploymentId) -> None:
        self.node = serving.node
        self.region = serving.region
        self.slots = serving.slots
        self.host, self.port = split_address(serving.door)
        # what the activator knows it by: ready when it appears in a map (a waiter then says it
        # waited for a start), gone when it leaves one
        self.instance = InstanceId(f"peer:{serving.node}:{deployment}")

    def info(self, deployment: DeploymentId, state: InstanceState) -> InstanceInfo:
        """The peer as the edge's listeners hear of it: no address of its own (its door is shared)."""
        return InstanceInfo(self.instance, AppName(""), deployment, state, "", 0, None, 0.0, StartKind.FORK)


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (an IPv6 host in brackets) as (host, port); ValueError when it is not one.

    >>> split_address("[::1]:8081")
    ('::1', 8081)
    """
    host, _, port = address.rpartition(":")
    number = int(port)  # ValueError for none
    if not host.strip("[]") or not 0 < number < 65536:
        raise ValueError(f"{address!r} is not host:port")
    return host.strip("[]"), number


def choose_peer(
    peers: Sequence[Peer],
    region: str,
    in_flight: Mapping[NodeName, int],
    unreachable_until: Mapping[NodeName, float],
    now: float,
) -> Peer | None:
    """The peer to forward to: own region before others, then the least loaded by this edge's
    requests in flight there per slot; never one that is full by that count, has no slots, or
    refused a connection lately (`unreachable_until` a time after `now`). None when none fits.
    Pure; `peers` never holds this node itself."""
    best: Peer | None = None
    best_rank = 2.0
    for peer in peers:
        if peer.slots <= 0 or unreachable_until.get(peer.node, 0.0) > now:
            continue
        load = in_flight.get(peer.node, 0)
        if load >= peer.slots:
            continue
        rank = (peer.region != region) + load / peer.slots  # own region in [0, 1), others in [1, 2)
        if rank < best_rank:
            best, best_rank = peer, rank
    return best


class EdgeView(LocalDelegate):
    """The runtime of a node's public edge (see the module docstring). `show` takes each new
    `ClusterMap`; `activate` (the head's only) is the cluster runtime's request_capacity.

    Example (a node's daemon)::

        view = EdgeView(local, "n1", "eu", activate=None, is_head=False)
        edge = Edge(view, EdgeSettings(node="n1; region=eu", region="eu"))
        view.show(cluster_map)      # on every map the head sends; older versions are ignored
    """

    def __init__(
        self,
        local: Runtime,
        node: NodeName,
        region: str,
        activate: Activate | None,
        is_head: bool,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(local)
        self.node = node
        self.region = region
        self._activate = activate
        self._is_head = is_head
        self._clock = clock
        self._map: ClusterMap | None = None
        self._peers: dict[DeploymentId, tuple[Peer, ...]] = {}  # from the map, without this node
        self._pins: dict[DeploymentId, Headers] = {}  # headers of a slot at a peer's edge
        self._head_pins: dict[DeploymentId, Headers] = {}  # headers of a slot at the head's, made once per map
        self._head: tuple[str, int] | None = None  # the head's public edge, for a node's view
        self._head_instance = InstanceId("edge:" + HEAD)  # never a peer's id: a retry moves off it
        self._listeners: list[RuntimeListener] = []
        self._in_flight: dict[NodeName, int] = {}  # this edge's requests at each peer now
        self._unreachable_until: dict[NodeName, float] = {}

    @property
    def map(self) -> ClusterMap | None:
        """The newest map shown, or None before the first."""
        return self._map

    def is_unreachable(self, node: NodeName) -> bool:
        """Whether `node` refused this edge a connection in the last UNREACHABLE_FOR seconds."""
        return self._unreachable_until.get(node, 0.0) > self._clock()

    def subscribe(self, listener: RuntimeListener) -> None:
        """`listener` hears this machine's runtime, and `capacity_changed` when a peer has room."""
        self._listeners.append(listener)
        self.local.subscribe(listener)

    def show(self, view: ClusterMap) -> None:
        """Take the cluster's newest map (an older `version` is ignored); waiters of each
        deployment that gained slots at a peer try again, and on a node all of them once the
        head's edge is known (it takes what no peer has room for)."""
        if self._map is not None and view.version < self._map.version:
            return
        before, had_head = self._peers, self._head is not None
        self._map = view
        self._peers = {dep: self._peers_of(dep, serving) for dep, serving in view.serving.items()}
        self._tell_peers(before, self._peers)
        self._pins = {dep: ((PIN_HEADER, dep.encode()),) for dep in view.serving}
        self._head_pins = {}
        self._head = self._head_of(view.head_edge)
        if self._head is not None and not had_head:
            woken = {dep for app in view.routes.apps.values() for dep in app.deployments} | set(self._peers)
        else:
            woken = {dep for dep, peers in self._peers.items() if gained_slots(before.get(dep, ()), peers)}
        for dep in sorted(woken):
            for listener in self._listeners:
                listener.capacity_changed(dep)

    def _peers_of(self, deployment: DeploymentId, serving: Sequence[Serving]) -> tuple[Peer, ...]:
        """The peers that serve a deployment, without this node and any with a malformed door."""
        peers = []
        for share in serving:
            if share.node == self.node:
                continue
            try:
                peers.append(Peer(share, deployment))
            except ValueError:
                log.warning(
                    "cluster map: node %s's door %r is not host:port; not forwarding there", share.node, share.door
                )
        return tuple(peers)

    def _head_of(self, head_edge: str) -> tuple[str, int] | None:
        """The head's public edge as (host, port), for a node's view; None on the head or when unknown."""
        if self._is_head or not head_edge:
            return None
        try:
            return split_address(head_edge)
        except ValueError:
            log.warning("cluster map: the head's edge %r is not host:port; not forwarding there", head_edge)
            return None

    def _tell_peers(
        self, before: Mapping[DeploymentId, tuple[Peer, ...]], after: Mapping[DeploymentId, tuple[Peer, ...]]
    ) -> None:
        """Peers that began or stopped serving a deployment, as instances becoming ready or stopping."""
        old = {p.instance: (dep, p) for dep, peers in before.items() for p in peers}
        new = {p.instance: (dep, p) for dep, peers in after.items() for p in peers}
        changes = [p.info(d, InstanceState.STOPPED) for i, (d, p) in old.items() if i not in new]
        changes += [p.info(d, InstanceState.READY) for i, (d, p) in new.items() if i not in old]
        for info in changes:
            for listener in self._listeners:
                listener.instance_changed(info)

    def try_acquire(self, deployment: DeploymentId) -> Slot | None:
        """This machine's slot first; else a peer's edge; else (a node) the head's public edge."""
        slot = self.local.try_acquire(deployment)
        if slot is not None:
            return slot
        now = self._clock()
        peers = self._peers.get(deployment)
        if peers:
            peer = choose_peer(peers, self.region, self._in_flight, self._unreachable_until, now)
            if peer is not None:
                return self._peer_slot(deployment, peer)
        if self._head is not None and self._unreachable_until.get(HEAD, 0.0) <= now:
            return self._head_slot(deployment, *self._head)
        return None

    def request_capacity(self, deployment: DeploymentId, slots: int, region: str = "") -> None:
        """The head's view asks the cluster runtime (demand from `region`, else this edge's own);
        a node's asks nobody: its requests went on to the head's edge, which asks there."""
        if self._activate is not None:
            self._activate(deployment, slots, region if REGION_RE.fullmatch(region) else self.region)

    def _peer_slot(self, deployment: DeploymentId, peer: Peer) -> Slot:
        self._in_flight[peer.node] = self._in_flight.get(peer.node, 0) + 1
        headers = self._pins.get(deployment, ())
        return Slot(
            peer.instance,
            deployment,
            peer.host,
            peer.port,
            StartKind.FORK,
            self._release_peer,
            node=peer.node,
            headers=headers,
            on_unreachable=self._mark_unreachable,
        )

    def _head_slot(self, deployment: DeploymentId, host: str, port: int) -> Slot:
        headers = self._head_pins.get(deployment)
        if headers is None:
            headers = ((PIN_HEADER, deployment.encode()),)
            if self.region:
                headers = (*headers, (REGION_HEADER, self.region.encode()))
            self._head_pins[deployment] = headers
        return Slot(
            self._head_instance,
            deployment,
            host,
            port,
            StartKind.FORK,
            _release_nothing,
            node=HEAD,
            headers=headers,
            on_unreachable=self._mark_unreachable,
        )

    def _release_peer(self, slot: Slot) -> None:
        self._in_flight[slot.node] -= 1
        for listener in self._listeners:
            listener.capacity_changed(slot.deployment)

    def _mark_unreachable(self, slot: Slot) -> None:
        """The edge could not connect to the slot's peer (or the head): leave it alone for a while."""
        self._unreachable_until[slot.node] = self._clock() + UNREACHABLE_FOR


def gained_slots(before: Sequence[Peer], after: Sequence[Peer]) -> bool:
    """Whether some peer has more slots in `after` than in `before` (a new peer counts)."""
    had = {peer.node: peer.slots for peer in before}
    return any(peer.slots > had.get(peer.node, 0) for peer in after)


def _release_nothing(slot: Slot) -> None:
    """The head's edge has no slot count here: its own queue bounds what it takes."""


class LocalOnly(LocalDelegate):
    """The peer door's runtime: slots on this machine's instances only (never a peer's, so a
    forwarded request goes no further), and no capacity requests (the head decides where
    instances run; a request that waits here waits for a slot to free). A request for a
    deployment none of whose instances runs here any more (the forwarding edge's map was older
    than this machine's work) is refused at once, with Retry-After, rather than left waiting."""

    def __init__(self, local: Runtime) -> None:
        super().__init__(local)
        self._listeners: list[RuntimeListener] = []

    def subscribe(self, listener: RuntimeListener) -> None:
        self._listeners.append(listener)
        self.local.subscribe(listener)

    def request_capacity(self, deployment: DeploymentId, slots: int, region: str = "") -> None:
        """Nothing while an instance of `deployment` is ready or starting here; else waiters fail fast."""
        if any(i.state in LIVE and not i.process for i in self.local.instances(deployment)):
            return
        loop = asyncio.get_running_loop()  # never inside the activator's own call
        for listener in self._listeners:
            loop.call_soon(listener.start_failed, deployment, NOT_HERE, RETRY_NOT_HERE)
