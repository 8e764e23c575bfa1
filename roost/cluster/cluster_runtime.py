"""`ClusterRuntime`: the `Runtime` protocol over several machines, for control and the autoscaler
on the head. Decides how many instances of each deployment run (as the autoscaler and `min` ask)
and lets Ray decide where: each instance is a reservation (a single-bundle placement group of the
app's memory limit, `placement.py`); a node runs as many instances of a deployment as it holds
reservations for (`Assignment`), through its own `LocalRuntime`. When Ray moves a reservation
(its node died), the next tick assigns it on its new node.

Every `TICK` it reads Ray's node list, asks each node's agent for its `NodeReport`, follows where
the reservations are, tells nodes what changed, turns the reports into the listeners' events and
sends every node the new `ClusterMap` when it changed. Never imports Ray (placement.py does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from roost.cluster.contract import (
    Artifact,
    Assignment,
    ClusterMap,
    Demand,
    NodeIdentity,
    NodeReport,
    Serving,
)
from roost.cluster.placement import RayCluster, Reservation
from roost.edge.routes import RouteTable
from roost.errors import RoostError, Unavailable
from roost.model import AppName, DeploymentId, InstanceId, InstanceRecord, InstanceState, Mode
from roost.runtime.capacity import clamp_count, floor_count, starts_needed
from roost.runtime.protocol import (
    DeploymentSpec,
    DeploymentStats,
    InstanceInfo,
    Isolation,
    ProbeResult,
    ProcessStats,
    ReleaseResult,
    Runtime,
    RuntimeListener,
)
from roost.tasks import TaskSet

log = logging.getLogger("roost.cluster")
TICK = 0.5
TIMEOUT_CALL = 5.0
TIMEOUT_REPORT = 2.0  # a machine that does not report within this is asked again next tick
TIMEOUT_HELLO = 60.0  # a node's agent actor starts a Ray worker first
TIMEOUT_PREPARE = 15 * 60.0  # a node builds the deployment's venv (or reuses it)
TIMEOUT_PLACE = 30.0  # Ray finds a node with room, or there is none
TIMEOUT_PLACE_IN_REGION = 1.5  # then anywhere
QUICK_PLACEMENT = 1.0  # seconds Ray takes to place a group when a machine has room (2-76 ms measured)
TIMEOUT_READY = 120.0
RETRY_AFTER_FULL = 5
TIMEOUT_DELIVERY = 1.0  # seconds a scale-down waits for every edge to have the map without what drains
REJOIN_GRACE = 10.0  # seconds after the head (re)connects before it places floors: machines rejoin first
RECENT = 5.0  # seconds: a request this recent at an edge is demand there
RETRY_NO_ROOM = 30.0  # seconds before a region that had no room is asked again
LIVE = (InstanceState.STARTING, InstanceState.READY)

DigestOf = Callable[[AppName, DeploymentId], Awaitable[str]]
ClusterEvents = Callable[[AppName | None, str, str, Mapping[str, object]], None]
"""Where events go (the head's store): the runtime's own kinds, and `node.*` ones without an app."""
ArchiveOf = Callable[[str], Awaitable[bytes]]


@dataclass
class _Node:
    """One machine the head works with: its agent, who it is, what it said last."""

    node_id: str
    identity: NodeIdentity
    report: NodeReport | None = None
    prepared: dict[DeploymentId, Artifact] = field(default_factory=dict)
    assigned: dict[DeploymentId, int] = field(default_factory=dict)
    shown: int = -1


@dataclass
class _Deployment:
    spec: DeploymentSpec
    artifact: Artifact
    reservations: list[Reservation] = field(default_factory=list)
    placed: dict[str, str | None] = field(default_factory=dict)  # reservation id -> node id
    starting: int = 0  # starts asked for and not placed yet
    settled: bool = False  # placed as asked since it was deployed (or since Ray came back)
    regions_starting: set[str] = field(default_factory=set)  # regions an instance is being placed in for their demand
    no_room: dict[str, float] = field(default_factory=dict)  # region -> when it last had no room for one
    placed_at: float | None = None  # wall-clock time of the newest placement


class ClusterRuntime:
    """The head's runtime. `local` is the head's own `LocalRuntime` (its builds' checks, the release
    command); the head is also one of the nodes, through its own agent like every other."""

    def __init__(
        self,
        ray: RayCluster,
        local: Runtime,
        events: ClusterEvents,
        digest_of: DigestOf,
        archive_of: ArchiveOf,
        head_edge: str,
    ) -> None:
        self.ray = ray
        self.local = local
        self.events = events
        self.digest_of = digest_of
        self.archive_of = archive_of
        self.head_edge = head_edge
        self._listeners: list[RuntimeListener] = []
        self._nodes: dict[str, _Node] = {}
        self._meeting: set[str] = set()
        self._asking: set[str] = set()  # machines whose report is being asked for
        self._showing: set[str] = set()  # machines a map is on its way to
        self._reserving = asyncio.Lock()
        self._placing_from = 0.0  # monotonic time from which floors are placed (machines rejoin first)
        self._deployments: dict[DeploymentId, _Deployment] = {}
        self._instances: dict[InstanceId, tuple[str, InstanceInfo]] = {}
        self._routes = RouteTable("localhost")
        self._map: ClusterMap | None = None
        self._version = time.time_ns() // 1_000_000  # grows across a head's restarts: nodes ignore older maps
        self._locks: dict[tuple[DeploymentId, str], asyncio.Lock] = {}
        self._archives: dict[str, bytes] = {}
        self._tasks = TaskSet(log, "cluster")
        self._ticking: asyncio.Task[None] | None = None
        self._reported = asyncio.Event()
        self._map_taken = asyncio.Event()  # set when a machine got a map (or one is lost): for `_delivered`

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Ray (through the driver process) and start the tick, which reconnects."""
        await self.ray.connect()
        self._placing_from = time.monotonic() + REJOIN_GRACE
        self._ticking = asyncio.get_running_loop().create_task(self._tick_forever(), name="cluster tick")

    async def close(self) -> None:
        """Stop working the cluster. Nodes keep serving what they run (a restarted head resumes);
        the head's own instances stop with its LocalRuntime, which the daemon closes."""
        if self._ticking is not None:
            self._ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticking
        await self._tasks.cancel_all()
        await self.ray.close()

    def subscribe(self, listener: RuntimeListener) -> None:
        self._listeners.append(listener)

    def set_routes(self, routes: RouteTable) -> None:
        """The head's newest route table: every node's edges get it with the next map."""
        self._routes = routes
        self._tasks.start(self._show_map(force=True), name="cluster map")

    # -- the tick --------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            try:
                if self.ray.connected:
                    await self.tick()
                else:
                    await self._reconnect()
            except RoostError as exc:
                log.warning("cluster: %s", exc.message)
            except Exception:  # one bad tick must not stop the cluster's upkeep
                log.exception("cluster tick failed")
            await asyncio.sleep(TICK)

    async def _reconnect(self) -> None:
        """Ray's head restarted (or the driver died): its placement groups went with the old
        driver. Nodes keep serving what they run; everything is placed again, at the counts it
        had, and each node's share follows from where Ray puts it."""
        why = self.ray.ended
        await self.ray.connect()
        self._placing_from = time.monotonic() + REJOIN_GRACE
        self._record(None, "cluster.reconnected", f"connected to Ray again ({why}); placing every instance again")
        counts = {d: len(e.reservations) for d, e in self._deployments.items()}
        for entry in self._deployments.values():
            entry.reservations.clear()
            entry.placed.clear()
            entry.settled = False
        for node in self._nodes.values():
            node.assigned.clear()  # told again once its share is known; it keeps running meanwhile
        self._nodes.clear()
        await self._follow_nodes()
        for deployment, count in counts.items():
            self._tasks.start(self._settle(deployment, count, "placed again"), name=f"replace {deployment}")

    async def tick(self) -> None:
        await self._follow_nodes()
        for node in list(self._nodes.values()):  # a machine that does not answer must not hold up the others
            if node.node_id not in self._asking:
                self._asking.add(node.node_id)
                self._tasks.start(self._report_of(node), name=f"report {node.identity.name}")
        await self._follow_reservations()
        self._sleep_idle(time.time())
        self._place_where_demand_is(time.time())
        self._reported.set()
        self._reported = asyncio.Event()
        await self._show_map()

    async def _follow_nodes(self) -> None:
        seen = {n.node_id: n for n in await self.ray.nodes()}
        for node_id in list(self._nodes):
            state = seen.get(node_id)
            if state is None or not state.alive:
                self._lose(self._nodes.pop(node_id), "Ray marked it dead")
        for node_id, state in seen.items():
            if state.alive and state.memory > 0 and node_id not in self._nodes and node_id not in self._meeting:
                self._meeting.add(node_id)
                self._tasks.start(self._meet(node_id), name=f"meet {node_id[:12]}")

    async def _meet(self, node_id: str) -> None:
        """Ask a new node who it is (its agent actor starts first: a second or more)."""
        try:
            identity: NodeIdentity = await self.ray.call(node_id, "hello", timeout=TIMEOUT_HELLO)
        except RoostError as exc:
            log.info("node %s is not ready for work yet: %s", node_id[:12], exc.message)
            return
        finally:
            self._meeting.discard(node_id)
        self._nodes[node_id] = _Node(node_id, identity)
        self._record(None, "node.joined", f"node {identity.name} (region {identity.region}) takes work", identity)

    def _lose(self, node: _Node, why: str) -> None:
        """A node left: its instances are gone; Ray moves its reservations, the tick reassigns them."""
        self._record(None, "node.lost", f"node {node.identity.name} was lost ({why})", node.identity)
        self._map_taken.set()  # one machine fewer to wait for
        for instance, (owner, info) in list(self._instances.items()):
            if owner == node.node_id:
                del self._instances[instance]
                gone = replace(info, state=InstanceState.CRASHED, reason=f"its node {node.identity.name} was lost")
                self._changed(gone)

    async def _report_of(self, node: _Node) -> None:
        try:
            await self._ask_report(node)
        finally:
            self._asking.discard(node.node_id)

    async def _ask_report(self, node: _Node) -> None:
        try:
            report: NodeReport = await self.ray.call(node.node_id, "report", timeout=TIMEOUT_REPORT)
        except RoostError as exc:
            log.info("node %s did not report: %s", node.identity.name, exc.message)
            return
        if node.report is None:  # what it runs already (a head that restarted finds nodes at work)
            for deployment in report.prepared:
                live = [i for i in report.instances if i.deployment == deployment and not i.process]
                node.assigned.setdefault(deployment, len(live))
        node.report = report
        for event in report.events:
            message = f"{event.message} (node {report.identity.name})"
            self.events(event.app, event.kind, message, {**event.data, "node": report.identity.name})
        self._merge_instances(node, report)

    def _merge_instances(self, node: _Node, report: NodeReport) -> None:
        fresh = {info.id: self._as_seen(node, info) for info in report.instances}
        grew: set[DeploymentId] = set()
        for instance, (owner, old) in list(self._instances.items()):
            if owner == node.node_id and instance not in fresh:
                del self._instances[instance]
                if old.state not in (InstanceState.STOPPED, InstanceState.CRASHED):
                    gone = replace(old, state=InstanceState.STOPPED)
                    self._changed(gone)
        for instance, info in fresh.items():
            old_entry = self._instances.get(instance)
            self._instances[instance] = (node.node_id, info)
            if old_entry is None or old_entry[1].state is not info.state:
                self._changed(info)
                if info.state is InstanceState.READY:
                    grew.add(info.deployment)
        for deployment in grew:
            self._capacity(deployment)

    def _as_seen(self, node: _Node, info: InstanceInfo) -> InstanceInfo:
        """An instance of another machine is reached through its node's door; its pid is not ours."""
        if node.identity.name == self._head_name():
            return info
        host, _, port = node.identity.door.rpartition(":")
        return replace(info, host=host, port=int(port), pid=None)

    def _head_name(self) -> str:
        return "head"

    async def _follow_reservations(self) -> None:
        everything = [r for d in self._deployments.values() for r in d.reservations]
        if not everything:
            return
        where = await self.ray.where(everything)
        for deployment, entry in self._deployments.items():
            entry.placed = {r.id: where.get(r.id) for r in entry.reservations}
            self._assign_all(deployment)

    def _assign_all(self, deployment: DeploymentId) -> None:
        """Tell each node whose share of `deployment` changed (in the background, one at a time per node)."""
        entry = self._deployments.get(deployment)
        wanted = self._shares(entry) if entry is not None else {}
        for node in self._nodes.values():
            has, wants = node.assigned.get(deployment, 0), wanted.get(node.node_id, 0)
            if wants < has and entry is not None and not entry.settled:
                continue  # not before every instance is placed again: what runs keeps serving
            if has != wants:
                self._tasks.start(self._assign(deployment, node), name=f"assign {deployment}")

    @staticmethod
    def _shares(entry: _Deployment) -> dict[str, int]:
        shares: dict[str, int] = {}
        for node_id in entry.placed.values():
            if node_id is not None:
                shares[node_id] = shares.get(node_id, 0) + 1
        return shares

    async def _assign(self, deployment: DeploymentId, node: _Node) -> None:
        lock = self._locks.setdefault((deployment, node.node_id), asyncio.Lock())
        async with lock:
            entry = self._deployments.get(deployment)
            count = self._shares(entry).get(node.node_id, 0) if entry is not None else 0
            if node.assigned.get(deployment, 0) == count or node.node_id not in self._nodes:
                return
            try:
                if count and entry is not None and node.prepared.get(deployment) != entry.artifact:
                    archive = await self._archive(entry.artifact.digest)
                    await self.ray.call(node.node_id, "prepare", entry.artifact, archive, timeout=TIMEOUT_PREPARE)
                    node.prepared[deployment] = entry.artifact
                runs_it = (
                    node.report is not None and deployment in node.report.prepared
                )  # from before the head's restart
                if deployment in node.prepared or runs_it:
                    await self.ray.call(node.node_id, "assign", Assignment(deployment, count), timeout=TIMEOUT_CALL)
                    app = entry.spec.app if entry is not None else None
                    self._record(app, "node.assigned", f"node {node.identity.name} runs {count} of {deployment}")
                node.assigned[deployment] = count
            except RoostError as exc:
                app = entry.spec.app if entry is not None else None
                why = exc.message
                self._record(app, "node.failed", f"node {node.identity.name} could not run {deployment}: {why}")
                self._failed(deployment, why)

    def _sleep_idle(self, now: float) -> None:
        """A function with no request for its `idle_timeout` sleeps down to its `min`, as on one
        machine (where each instance's own timer does it): nodes never idle instances out."""
        for deployment, entry in self._deployments.items():
            config = entry.spec.config
            floor = config.scale.min
            if config.mode is not Mode.FUNCTION or len(entry.reservations) <= floor or entry.starting:
                continue
            demand, stats = self.demand(deployment), self.stats(deployment)
            if demand.waiting or stats.in_flight:
                continue
            moments = [t for t in (demand.last_request_at, stats.last_start_at, entry.placed_at) if t is not None]
            if not moments or now - max(moments) < config.scale.idle_timeout:
                continue  # an instance placed a moment ago is not idle: its request is on its way
            idle = config.scale.idle_timeout
            message = f"{deployment}: {len(entry.reservations)} -> {floor} instances (no request for {idle:g}s)"
            self._record(entry.spec.app, "scale", message)
            self._tasks.start(self._release(entry, len(entry.reservations) - floor), name=f"sleep {deployment}")

    def _place_where_demand_is(self, now: float) -> None:
        """A region whose edges see requests for a deployment that none of its machines runs (they
        are forwarded to another region) gets an instance of its own, while it has room and the
        deployment is under its `max`: the nearest compute serves, and the edges there prefer it."""
        if len({node.identity.region for node in self._nodes.values()}) < 2:
            return
        for deployment, entry in self._deployments.items():
            running = {
                self._nodes[owner].identity.region
                for owner, info in self._instances.values()
                if info.deployment == deployment and owner in self._nodes and info.state in LIVE
            }
            for region in sorted(self._regions_asking(deployment, now)):
                if region in running or region in entry.regions_starting:
                    continue
                if now - entry.no_room.get(region, 0.0) < RETRY_NO_ROOM:
                    continue
                if len(entry.reservations) + entry.starting >= entry.spec.config.scale.max:
                    break
                entry.regions_starting.add(region)
                self._tasks.start(self._start_in(deployment, entry, region), name=f"place {deployment} in {region}")

    def _regions_asking(self, deployment: DeploymentId, now: float) -> set[str]:
        """Regions whose edges have requests for `deployment` waiting, or had one in the last RECENT seconds."""
        regions = set()
        for node in self._nodes.values():
            seen = node.report.demand.get(deployment) if node.report is not None else None
            if seen is not None and (
                seen.waiting or (seen.last_request_at is not None and now - seen.last_request_at < RECENT)
            ):
                regions.add(node.identity.region)
        return regions

    async def _start_in(self, deployment: DeploymentId, entry: _Deployment, region: str) -> None:
        try:
            await self._place(deployment, region, anywhere=False)
            self._record(
                entry.spec.app, "cluster.placed", f"{deployment}: an instance in region {region}, where its demand is"
            )
        except RoostError:
            entry.no_room[region] = time.time()
        finally:
            entry.regions_starting.discard(region)

    async def _archive(self, digest: str) -> bytes:
        if digest not in self._archives:
            self._archives[digest] = await self.archive_of(digest)
        return self._archives[digest]

    async def _show_map(self, force: bool = False) -> None:
        serving = self._serving()
        if force or self._map is None or self._map.serving != serving or self._map.routes is not self._routes:
            self._version += 1
            self._map = ClusterMap(self._version, self._routes, serving, self.head_edge)
        for node in list(self._nodes.values()):  # each in the background: a silent machine holds up no other
            if node.shown < self._map.version and node.node_id not in self._showing:
                self._showing.add(node.node_id)
                self._tasks.start(self._show(node), name=f"map to {node.identity.name}")

    async def _show(self, node: _Node) -> None:
        """Send `node` the newest map until it has it (the map may change while one is on its way)."""
        try:
            while self._map is not None and node.shown < self._map.version and node.node_id in self._nodes:
                current = self._map
                try:
                    await self.ray.call(node.node_id, "show", current, timeout=TIMEOUT_CALL)
                except RoostError as exc:
                    log.info("node %s missed map %d: %s", node.identity.name, current.version, exc.message)
                    return
                node.shown = max(node.shown, current.version)
                self._map_taken.set()
        finally:
            self._showing.discard(node.node_id)

    def _serving(self) -> dict[DeploymentId, tuple[Serving, ...]]:
        ready: dict[tuple[DeploymentId, str], int] = {}
        for owner, info in self._instances.values():
            if info.state is InstanceState.READY and not info.process:
                ready[(info.deployment, owner)] = ready.get((info.deployment, owner), 0) + 1
        serving: dict[DeploymentId, list[Serving]] = {}
        shares = {deployment: self._shares(entry) for deployment, entry in self._deployments.items() if entry.settled}
        for (deployment, owner), count in sorted(ready.items()):
            node = self._nodes.get(owner)
            entry = self._deployments.get(deployment)
            if node is None or entry is None:
                continue
            if deployment in shares:  # a machine told to run fewer is sent fewer before it drains
                count = min(count, shares[deployment].get(owner, 0))
                if not count:
                    continue
            concurrency = entry.spec.config.scale.concurrency
            who = node.identity
            serving.setdefault(deployment, []).append(Serving(who.name, who.region, who.door, count, concurrency))
        return {deployment: tuple(shares) for deployment, shares in serving.items()}

    # -- deployments -----------------------------------------------------------------------

    async def deploy(self, spec: DeploymentSpec) -> None:
        digest = await self.digest_of(spec.app, spec.deployment)
        artifact = Artifact(spec.app, spec.deployment, digest, spec.config, dict(spec.env))
        entry = self._deployments.get(spec.deployment)
        if entry is None:
            entry = self._deployments[spec.deployment] = _Deployment(spec, artifact)
        else:
            entry.spec, entry.artifact = spec, artifact
            for node in self._nodes.values():
                if node.prepared.get(spec.deployment) not in (None, artifact):
                    node.assigned.pop(spec.deployment, None)  # prepared again, then assigned again
        self._assign_all(spec.deployment)
        floor = floor_count(spec.config)
        if len(entry.reservations) < floor:
            self._tasks.start(self._settle(spec.deployment, floor, "keeping the minimum"), name="cluster floor")
        else:
            entry.settled = True

    async def _settle(self, deployment: DeploymentId, count: int, reason: str) -> None:
        """Place `count`; then (placed or not) nodes may be told to run fewer than they do. Right
        after the head (re)connects it first waits for the machines to rejoin: they may still run
        those instances, which it then keeps where Ray places them again."""
        try:
            await self.scale_to(deployment, count, reason)
        except RoostError as exc:
            entry = self._deployments.get(deployment)
            self._record(entry.spec.app if entry else None, "cluster.unplaced", f"{deployment}: {exc.message}")
        finally:
            entry = self._deployments.get(deployment)
            if entry is not None:
                entry.settled = True
                self._assign_all(deployment)

    async def retire(self, deployment: DeploymentId) -> None:
        entry = self._deployments.pop(deployment, None)
        if entry is not None:
            await asyncio.gather(*(self.ray.release(r) for r in entry.reservations))
        await asyncio.gather(*(self._retire_on(node, deployment) for node in list(self._nodes.values())))

    async def _retire_on(self, node: _Node, deployment: DeploymentId) -> None:
        if deployment not in node.prepared:
            return
        with contextlib.suppress(RoostError):
            await self.ray.call(node.node_id, "retire", deployment, timeout=TIMEOUT_PREPARE)
        node.prepared.pop(deployment, None)
        node.assigned.pop(deployment, None)

    async def drain(self, deployment: DeploymentId) -> None:
        entry = self._deployments.get(deployment)
        if entry is None:
            return
        await self._release(entry, len(entry.reservations))

    async def restart(self, deployment: DeploymentId) -> None:
        """Instance by instance: each is stopped once the node's replacement is on its way."""
        for info in self.instances(deployment):
            await self.stop_instance(info.id, "restart")

    # -- slots: the edges hold them (EdgeView); the head's autoscaler and activator ask here ---

    def try_acquire(self, deployment: DeploymentId) -> None:
        """Slots are handed out by each edge's own view of the cluster, never here."""
        return None

    def request_capacity(self, deployment: DeploymentId, slots: int, region: str = "") -> None:
        entry = self._deployments.get(deployment)
        if entry is None:
            return
        stats = self.stats(deployment)
        config = entry.spec.config
        count = starts_needed(
            slots=slots,
            free=stats.capacity,
            starting=stats.starting + entry.starting,
            live=len(entry.reservations),
            concurrency=config.scale.concurrency,
            maximum=config.scale.max,
        )
        entry.starting += count  # counted now: a request for capacity just after this sees them
        for _ in range(count):
            self._tasks.start(self._start_for_demand(deployment, region), name=f"start {deployment}")

    async def _start_for_demand(self, deployment: DeploymentId, region: str) -> None:
        try:
            await self._place(deployment, region, counted=True)
        except RoostError as exc:
            why = exc.message
            self._failed(deployment, why)

    async def start_instance(self, deployment: DeploymentId) -> InstanceInfo:
        return await self._place(deployment, "")

    async def _place(
        self, deployment: DeploymentId, region: str, anywhere: bool = True, counted: bool = False
    ) -> InstanceInfo:
        """One more reservation, in `region` when it has room, else (`anywhere`) wherever Ray finds
        one; then the instance on its node, once ready. Raises Unavailable. `counted`: the caller
        has already added it to the deployment's `starting` (before the task ran)."""
        entry = self._deployment(deployment)
        memory = entry.spec.config.limits.memory
        if not counted:
            entry.starting += 1
        try:
            reservation, placed = await self._reserve(
                memory, region, TIMEOUT_PLACE_IN_REGION if region else TIMEOUT_PLACE
            )
            if not placed and region and anywhere:
                await self.ray.release(reservation)
                reservation, placed = await self._reserve(memory, "", TIMEOUT_PLACE)
            if not placed:
                await self.ray.release(reservation)
                raise Unavailable(
                    f"no machine of the cluster has room for another instance of {entry.spec.app} "
                    f"({memory // 2**20} MB)",
                    hint="join another machine (`roost node join`), raise a node's --memory-budget "
                    "or lower limits.memory",
                )
        finally:
            entry.starting -= 1
        if self._deployments.get(deployment) is not entry:  # retired meanwhile
            await self.ray.release(reservation)
            raise Unavailable(f"deployment {deployment} was retired while an instance was being placed")
        entry.reservations.append(reservation)
        entry.placed_at = time.time()
        where = await self.ray.where([reservation])
        entry.placed[reservation.id] = node_id = where.get(reservation.id)
        before = {i.id for i in self.instances(deployment)}
        self._assign_all(deployment)
        return await self._new_ready(deployment, node_id, before)

    async def _reserve(self, memory: int, region: str, within: float) -> tuple[Reservation, bool]:
        """Ask Ray for one place and wait for it. One request at a time while Ray answers quickly:
        placement groups asked for all at once were placed from the same view of the machines
        (3/2/1 instead of 2/2/2 for six on three), one after the other they spread."""
        async with self._reserving:
            reservation = await self.ray.reserve(memory, region)
            if await self.ray.placed(reservation, min(within, QUICK_PLACEMENT)):
                return reservation, True
        return reservation, within > QUICK_PLACEMENT and await self.ray.placed(reservation, within - QUICK_PLACEMENT)

    async def _new_ready(self, deployment: DeploymentId, node_id: str | None, before: set[InstanceId]) -> InstanceInfo:
        deadline = time.monotonic() + TIMEOUT_READY
        while time.monotonic() < deadline:
            kept = self._kept(deployment, node_id)
            if kept is not None:
                return kept
            for owner, info in self._instances.values():
                new = info.deployment == deployment and info.id not in before and info.state is InstanceState.READY
                if new and (node_id is None or owner == node_id):
                    return info
            node = self._nodes.get(node_id) if node_id is not None else None
            if node is not None:
                await self._ask_report(node)  # sooner than the tick
                await self._show_map()
                await asyncio.sleep(0.05)
            else:
                await self._reported.wait()
        raise Unavailable(f"no new instance of {deployment} was ready within {TIMEOUT_READY:.0f} s")

    def _kept(self, deployment: DeploymentId, node_id: str | None) -> InstanceInfo | None:
        """Before a deployment is placed again after the head (re)connected, a machine that still
        runs as many of it as Ray now places there starts none: one of those it runs is the place's."""
        entry = self._deployments.get(deployment)
        if entry is None or entry.settled or node_id is None:
            return None
        running = [
            info
            for owner, info in self._instances.values()
            if owner == node_id
            and info.deployment == deployment
            and info.state is InstanceState.READY
            and not info.process
        ]
        return running[0] if running and len(running) >= self._shares(entry).get(node_id, 0) else None

    def _deployment(self, deployment: DeploymentId) -> _Deployment:
        entry = self._deployments.get(deployment)
        if entry is None:
            raise Unavailable(f"deployment {deployment} is not deployed in the cluster")
        return entry

    async def scale_to(self, deployment: DeploymentId, count: int, reason: str) -> None:
        await asyncio.sleep(max(0.0, self._placing_from - time.monotonic()))  # machines rejoin first
        entry = self._deployment(deployment)
        target = clamp_count(entry.spec.config, count)
        current = len(entry.reservations) + entry.starting
        if target > current:
            entry.starting += target - current  # counted now: a scale_to woken with this one sees them
            results = await asyncio.gather(
                *(self._place(deployment, "", counted=True) for _ in range(target - current)), return_exceptions=True
            )
            failures = [r for r in results if isinstance(r, RoostError)]
            if failures:
                raise failures[0]
        elif target < len(entry.reservations):
            await self._release(entry, len(entry.reservations) - target)

    async def _release(self, entry: _Deployment, count: int) -> None:
        """Give back `count` reservations: unplaced ones first, then from the nodes holding most."""
        chosen = self._surplus(entry, count)
        for reservation in chosen:
            entry.reservations.remove(reservation)
            entry.placed.pop(reservation.id, None)
        await self._show_map()  # every edge stops sending there first, then the machines drain
        await self._delivered(TIMEOUT_DELIVERY)
        self._assign_all(entry.spec.deployment)
        await asyncio.gather(*(self.ray.release(r) for r in chosen))

    async def _delivered(self, within: float) -> None:
        """Until every machine has the current map (or `within` seconds passed)."""
        deadline = time.monotonic() + within
        while self._map is not None and any(node.shown < self._map.version for node in self._nodes.values()):
            self._map_taken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._map_taken.wait(), deadline - time.monotonic())
            if time.monotonic() >= deadline:
                return

    def _surplus(self, entry: _Deployment, count: int) -> list[Reservation]:
        """Which `count` reservations to give back: unplaced ones first; then from a region that
        keeps one without it, or that no request asks for, so a region with demand keeps its own
        instance while it can; among those, from the machine holding most."""
        shares = self._shares(entry)
        asking = self._regions_asking(entry.spec.deployment, time.time())
        in_region: dict[str, int] = {}
        for node_id, share in shares.items():
            region = self._region_of(node_id)
            in_region[region] = in_region.get(region, 0) + share
        chosen = [r for r in entry.reservations if entry.placed.get(r.id) is None][:count]
        while len(chosen) < count:
            placed = [(r, node) for r in entry.reservations if r not in chosen and (node := entry.placed.get(r.id))]
            if not placed:
                break

            def spare(pair: tuple[Reservation, str]) -> tuple[bool, int]:
                region = self._region_of(pair[1])
                return region not in asking or in_region[region] > 1, shares[pair[1]]

            pick, node = max(placed, key=spare)
            shares[node] -= 1
            in_region[self._region_of(node)] -= 1
            chosen.append(pick)
        return chosen

    def _region_of(self, node_id: str) -> str:
        node = self._nodes.get(node_id)
        return node.identity.region if node is not None else ""

    async def stop_instance(self, instance: InstanceId, reason: str) -> None:
        """Stops it where it runs; its node keeps its share, so a recycled instance is replaced."""
        entry = self._instances.get(instance)
        node = self._nodes.get(entry[0]) if entry is not None else None
        if node is None:
            return
        with contextlib.suppress(RoostError):
            await self.ray.call(node.node_id, "stop_instance", instance, reason, timeout=TIMEOUT_CALL * 6)

    # -- what runs --------------------------------------------------------------------------

    def instances(self, deployment: DeploymentId | None = None) -> list[InstanceInfo]:
        return [info for _, info in self._instances.values() if deployment is None or info.deployment == deployment]

    def stats(self, deployment: DeploymentId) -> DeploymentStats:
        infos = [i for i in self.instances(deployment) if not i.process]
        entry = self._deployments.get(deployment)
        concurrency = entry.spec.config.scale.concurrency if entry is not None else 1
        ready = [i for i in infos if i.state is InstanceState.READY]
        in_flight = sum(i.in_flight for i in infos)
        demand = self.demand(deployment)
        started = [i.started_at for i in infos if i.state in (InstanceState.READY, InstanceState.STARTING)]
        return DeploymentStats(
            deployment,
            ready=len(ready),
            starting=sum(1 for i in infos if i.state is InstanceState.STARTING),
            draining=sum(1 for i in infos if i.state is InstanceState.DRAINING),
            in_flight=in_flight,
            capacity=max(0, len(ready) * concurrency - sum(i.in_flight for i in ready)),
            last_request_at=demand.last_request_at,
            last_start_at=max(started) if started else None,
        )

    def demand(self, deployment: DeploymentId) -> Demand:
        """Requests in flight or waiting at every node's edges, and the latest request's time."""
        waiting, last = 0, None
        for node in self._nodes.values():
            seen = node.report.demand.get(deployment) if node.report is not None else None
            if seen is None:
                continue
            waiting += seen.waiting
            if seen.last_request_at is not None and (last is None or seen.last_request_at > last):
                last = seen.last_request_at
        return Demand(waiting, last)

    def usage(self) -> dict[str, tuple[int, int]]:
        """Node name -> (instances running there, bytes of memory its placements hold): `roost nodes`."""
        found: dict[str, tuple[int, int]] = {}
        for node in self._nodes.values():
            live = sum(1 for owner, info in self._instances.values() if owner == node.node_id and not info.process)
            held = sum(
                r.memory
                for entry in self._deployments.values()
                for r in entry.reservations
                if entry.placed.get(r.id) == node.node_id
            )
            found[node.identity.name] = (live, held)
        return found

    async def isolation(self, deployment: DeploymentId | None = None) -> dict[InstanceId, Isolation]:
        """Each machine's read-back, asked at once; a machine that does not answer in time (cut
        off, say) is left out, as an instance whose process cannot be read is."""

        async def read(node: _Node) -> dict[InstanceId, Isolation]:
            try:
                found: dict[InstanceId, Isolation] = await self.ray.call(
                    node.node_id, "isolation", deployment, timeout=TIMEOUT_CALL
                )
            except RoostError:
                return {}
            return found

        merged: dict[InstanceId, Isolation] = {}
        for part in await asyncio.gather(*(read(node) for node in list(self._nodes.values()))):
            merged.update(part)
        return merged

    # -- the head's own: builds are checked and released where they were built ----------------

    async def isolation_of_build(
        self, pid: int, argv: Sequence[str], app: AppName, build_dir: Path
    ) -> Isolation | None:
        return await self.local.isolation_of_build(pid, argv, app, build_dir)

    async def probe(self, spec: DeploymentSpec, limit_seconds: float) -> ProbeResult:
        return await self.local.probe(spec, limit_seconds)

    async def probe_process(self, spec: DeploymentSpec, process: str) -> ProbeResult:
        return await self.local.probe_process(spec, process)

    def process_stats(self, deployment: DeploymentId) -> list[ProcessStats]:
        return self.local.process_stats(deployment)

    async def release(self, spec: DeploymentSpec, on_line: Callable[[str], None]) -> ReleaseResult:
        return await self.local.release(spec, on_line)

    async def recover(self, leftovers: Sequence[InstanceRecord]) -> list[str]:
        return await self.local.recover(leftovers)

    # -- helpers ----------------------------------------------------------------------------

    def _changed(self, info: InstanceInfo) -> None:
        for listener in self._listeners:
            listener.instance_changed(info)

    def _capacity(self, deployment: DeploymentId) -> None:
        for listener in self._listeners:
            listener.capacity_changed(deployment)

    def _failed(self, deployment: DeploymentId, why: str) -> None:
        for listener in self._listeners:
            listener.start_failed(deployment, why, RETRY_AFTER_FULL)

    def _record(self, app: AppName | None, kind: str, message: str, identity: Any = None) -> None:
        data: dict[str, object] = {}
        if isinstance(identity, NodeIdentity):
            data = {"node": identity.name, "region": identity.region}
        log.info("%s", message)
        self.events(app, kind, message, data)
