"""The daemon of `roost node join`: this machine's runtime, builder, registry, public edge, peer
door and agent socket, started and closed in one place (`join.py` keeps Ray beside it).

Wiring only: what a node does for the head is `LocalNodeHost`'s; how requests are served is the
edges'. The public edge serves through an `EdgeView` (this machine's instances, else a peer's door,
else the head's edge), the peer door through `LocalOnly` (this machine's instances alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from roost.applog import LogBook
from roost.builder import Builder, Enclosure, home_id
from roost.builder.builder import TIMEOUT_BUILD
from roost.cluster.agent import AgentServer
from roost.cluster.cluster_settings import NodeSettings, agent_socket_path, closed_to_apps, cluster_dir, join_host_port
from roost.cluster.contract import ClusterMap, Demand, NodeIdentity
from roost.cluster.edgeview import EdgeView, LocalOnly, node_label
from roost.cluster.ledger import InstanceLedger
from roost.cluster.nodehost import LocalNodeHost, NodeEvents
from roost.edge import Edge, EdgeSettings
from roost.errors import ConfigError
from roost.homelock import HomeLock
from roost.listeners import bind_tcp
from roost.model import DeploymentId, InstanceId
from roost.registry import Registry
from roost.runtime import RUNNER_REQUIREMENTS, LocalRuntime
from roost.runtime.sandbox.host_confinement import HostConfinement, build_jails, unjailed_build_procs

log = logging.getLogger("roost.cluster.node")
GRACE_EDGE_SHUTDOWN = 10.0
LEDGER_NAME = "instances.json"  # under HOME/cluster
LOCK_NAME = "roost.lock"  # the same lock as `roost serve`'s: one daemon per home, whichever it is


TRUST_EVERY_PEER = ("0.0.0.0/0", "::/0")


def door_settings(base: EdgeSettings | None = None) -> EdgeSettings:
    """A peer door's: its clients are the other machines' edges, each carrying many users'
    requests, so no per-address rate or connection cap (the edge that took a request applied
    its own; the total cap stays), and what they say is believed (the deployment their split
    chose, the demand's region, the client's address): the door is open only on the cluster's
    network (docs/cluster.md)."""
    defaults = base or EdgeSettings()
    return replace(
        defaults,
        rate_per_client=0.0,
        limit_connections_per_client=defaults.limit_connections,
        trust_proxy=TRUST_EVERY_PEER,
    )


def split_host(address: str) -> str:
    """The host of 'host:port' or '[v6]:port'."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    return address.rpartition(":")[0] or address


def address_toward(head: str) -> str:
    """This machine's address on the route to `head` (host:port): what other nodes reach it at
    when `--address` is not given. No packet is sent (a UDP socket's connect only picks a route)."""
    host = split_host(head)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
    except OSError as exc:
        raise ConfigError(
            f"cannot tell this machine's address toward the head {head}: {exc.strerror or exc}",
            hint="give the address other machines reach this one at with --address",
        ) from exc


class NodeDaemon:
    """Owns every long-lived piece of one `roost node join` run but Ray.

    Example (join.py)::

        daemon = NodeDaemon(settings, announce)
        await daemon.start()          # the home locked, the edges and the agent socket listening
        ...
        await daemon.close()          # edges closed, no instance left, the socket removed
    """

    def __init__(
        self,
        settings: NodeSettings,
        announce: Callable[[str], None],
        *,
        confinement: HostConfinement | None = None,
    ) -> None:
        self.settings = settings
        self.announce = announce
        self.events = NodeEvents()
        self.host: LocalNodeHost | None = None
        self.edge: Edge | None = None
        self.door: Edge | None = None
        self.view: EdgeView | None = None
        self._confinement = confinement or HostConfinement(closed_ports=closed_to_apps(settings))
        self._lock = HomeLock(settings.home / LOCK_NAME)
        self._sockets: list[socket.socket] = []
        self._runtime: LocalRuntime | None = None
        self._agent: AgentServer | None = None
        self._ledger: InstanceLedger | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Lock the home, bind both doors, start the runtime, the builder, the edges and the agent
        socket. Raises RoostError (a taken port, another daemon on this home); call `close` after."""
        s = self.settings
        s.home.mkdir(parents=True, exist_ok=True)
        s.home.chmod(0o700)  # owner-only, as `roost serve`'s; the sandbox opens only what an app needs
        self._lock.acquire()
        edge_sock = self._keep(bind_tcp(s.edge_host, s.edge_port, "public edge", "--port"))
        door_sock = self._keep(bind_tcp(s.edge_host, s.peer_port, "peer door", "--peer-port"))
        logs = LogBook(s.home / "logs")
        runtime = self._runtime = LocalRuntime(
            s.home,
            logs,
            self.events,
            memory_budget=s.memory_budget,
            sandbox=self._confinement.sandbox_settings(os.environ),
        )
        await runtime.start()
        await self._recover(runtime)
        builder = await self._builder(runtime)
        await self._start_edges(runtime, edge_sock, door_sock)
        self.host = LocalNodeHost(
            await self._identity(door_sock),
            runtime,
            builder,
            Registry(s.home / "blobs"),
            logs,
            self.events,
            demand=self.demand,
            on_map=self._show,
        )
        self._agent = AgentServer(self.host, agent_socket_path(s.home))
        await self._agent.start()
        self.announce(f"edge       http://{_listening(edge_sock)}  (every app of the cluster)")
        self.announce(f"peer door  http://{self.host.identity.door}  (other nodes' edges, for this node's instances)")
        self.announce(f"agent      {self._agent.path}")

    async def _recover(self, runtime: LocalRuntime) -> None:
        """End the instances a previous run left (a SIGKILLed daemon's), then record this run's."""
        path = cluster_dir(self.settings.home) / LEDGER_NAME
        ended = await runtime.recover(InstanceLedger.leftovers(path))
        if ended:
            self.announce(f"ended what a previous run left running: {', '.join(ended)}")
        self._ledger = InstanceLedger(path)
        await self._ledger.start()
        runtime.subscribe(self._ledger)

    async def _builder(self, runtime: LocalRuntime) -> Builder:
        s = self.settings
        jails = build_jails(runtime.sandbox, self._confinement, TIMEOUT_BUILD)
        procs = await asyncio.to_thread(unjailed_build_procs, runtime.sandbox, jails)  # after the runtime's sweep
        enclosure = Enclosure(home_id(s.home), procs)
        return Builder(s.home, RUNNER_REQUIREMENTS, enclosure=enclosure, jails=jails, timeout_build=TIMEOUT_BUILD)

    async def _start_edges(self, runtime: LocalRuntime, edge_sock: socket.socket, door_sock: socket.socket) -> None:
        s = self.settings
        view = self.view = EdgeView(runtime, s.name, s.region, activate=None, is_head=False)
        label = node_label(s.name, s.region)
        edge = self.edge = Edge(view, EdgeSettings(node=label, region=s.region))
        door = self.door = Edge(LocalOnly(runtime), replace(door_settings(), node=label, region=s.region))
        for each in (edge, door):
            each.on_recycle = self._recycle
        await edge.start(edge_sock)
        await door.start(door_sock)

    async def _identity(self, door_sock: socket.socket) -> NodeIdentity:
        s = self.settings
        address = s.address if s.address else await asyncio.to_thread(address_toward, s.head)
        door = join_host_port(address, door_sock.getsockname()[1])
        return NodeIdentity(s.name, s.region, door, s.memory_budget)

    def demand(self) -> dict[DeploymentId, Demand]:
        """Requests at the public edge, by deployment. The peer door's are left out: each of them
        was counted already by the edge that forwarded it, and the head adds up every node's."""
        if self.edge is None:
            return {}
        return {
            deployment: Demand(counters.in_flight + counters.queued, counters.last_request_at)
            for deployment, counters in self.edge.all_counters().items()
        }

    def _show(self, view: ClusterMap) -> None:
        """The head's newest map: both edges route by it; then whoever else asked for it."""
        for edge in (self.edge, self.door):
            if edge is not None:
                edge.update_routes(view.routes)
        if self.view is not None:
            self.view.show(view)

    def _recycle(self, instance: InstanceId, reason: str) -> None:
        """The edges' hook: an instance overran a request's time limit."""
        if self._runtime is not None:
            task = asyncio.get_running_loop().create_task(self._runtime.stop_instance(instance, reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _keep(self, sock: socket.socket) -> socket.socket:
        self._sockets.append(sock)
        return sock

    async def close(self) -> None:
        """Shutdown, in order: the edges (in-flight answers finish within the grace), every
        instance (drain, TERM, grace, KILL; the ledger then lists none), the agent socket, the
        home's lock. Safe after a start that failed half-way."""
        for edge in (self.edge, self.door):
            if edge is not None:
                await edge.close(GRACE_EDGE_SHUTDOWN)
        if self._runtime is not None:
            await self._runtime.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ledger is not None:
            await self._ledger.close()
        if self._agent is not None:
            await self._agent.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self._lock.release()


def _listening(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return join_host_port(host, port)
