"""What `roost serve --cluster` adds to the daemon, in one object: Ray's head, the driver process
and the `ClusterRuntime` that control and the autoscaler use, and the head as one of the nodes
(its own `LocalNodeHost` over the daemon's `LocalRuntime`, its agent socket, its peer door, and
the `EdgeView` its public edge serves through).

Wiring only, as the daemon's: what each piece does is its own module's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

from roost.applog import LogBook
from roost.builder import Builder
from roost.cluster.agent import AgentServer
from roost.cluster.cluster_runtime import ArchiveOf, ClusterEvents, ClusterRuntime, DigestOf
from roost.cluster.cluster_settings import HEAD_ROLE, agent_socket_path, join_host_port, ray_environment
from roost.cluster.contract import Artifact, ClusterMap, Demand, NodeIdentity
from roost.cluster.edgeview import EdgeView, node_label
from roost.cluster.head import ClusterHead
from roost.cluster.nodehost import BuiltPaths, LocalNodeHost, NodeEvents
from roost.cluster.placement import RayCluster
from roost.edge import Edge, EdgeSettings, RouteTable
from roost.model import ClusterNode, DeploymentId
from roost.registry import Registry
from roost.runtime import LocalRuntime

GRACE_DOOR_SHUTDOWN = 10.0
FindBuild = Callable[[Artifact], Awaitable[BuiltPaths | None]]


class HeadNode:
    """The head's side of the cluster. `peer_sock` is bound on the cluster's address: the head's
    door, where other machines' edges forward requests for its instances and those that need a
    start (its door serves through the same `EdgeView` as its public edge)."""

    def __init__(
        self,
        head: ClusterHead,
        local: LocalRuntime,
        events: ClusterEvents,
        *,
        builder: Builder,
        registry: Registry,
        logs: LogBook,
        digest_of: DigestOf,
        find_build: FindBuild,
        peer_sock: socket.socket,
        door_settings: EdgeSettings,
        demand: Callable[[], Mapping[DeploymentId, Demand]],
    ) -> None:
        s = head.settings
        self.head = head
        self.region = s.region
        self.ray = RayCluster(s.gcs_address, ray_environment(head.token_path, s.home, os.environ))  # as Ray's own
        door = join_host_port(s.address, peer_sock.getsockname()[1])
        # nodes send the head's door what no machine has room for: it starts an instance (the
        # door trusts the cluster's network, so the demand's region and the chosen deployment count)
        self.runtime = ClusterRuntime(self.ray, local, events, digest_of, _reader(registry), door)
        self.view = EdgeView(local, HEAD_ROLE, s.region, activate=self.runtime.request_capacity, is_head=True)
        self.door = Edge(self.view, door_settings)
        self._peer_sock = peer_sock
        self.host = LocalNodeHost(
            NodeIdentity(HEAD_ROLE, s.region, door, s.memory_budget),
            local,
            builder,
            registry,
            logs,
            NodeEvents(),  # the head's runtime reports to the daemon's store directly
            demand=demand,  # at the head's public edge, reported like every node's
            on_map=self._show,
            find_build=find_build,
        )
        self.agent = AgentServer(self.host, agent_socket_path(s.home))

    @property
    def node(self) -> str:
        return node_label(HEAD_ROLE, self.region)

    def _show(self, view: ClusterMap) -> None:
        self.view.show(view)

    async def nodes(self) -> list[ClusterNode]:
        """`roost nodes`: Ray's node table, with what runs on each machine now."""
        usage = self.runtime.usage()
        rows = await self.head.nodes()
        return [
            dataclasses.replace(row, instances=usage[row.name][0], memory_used=usage[row.name][1])
            if row.alive and row.name in usage
            else row
            for row in rows
        ]

    def update_routes(self, table: RouteTable) -> None:
        self.door.update_routes(table)
        self.runtime.set_routes(table)

    async def start(self) -> None:
        """The agent socket (Ray's workers on this machine reach the daemon there), the peer door,
        Ray's head, then the driver. Raises RoostError."""
        await self.agent.start()
        await self.door.start(self._peer_sock)
        await self.head.start()
        await self.runtime.start()

    async def close(self) -> None:
        """The driver first (nodes keep serving), then the door, the socket and Ray's head."""
        await self.runtime.close()
        await self.door.close(GRACE_DOOR_SHUTDOWN)
        await self.agent.close()
        await self.head.close()


def _reader(registry: Registry) -> ArchiveOf:
    async def archive(digest: str) -> bytes:
        return await asyncio.to_thread(registry.path(digest).read_bytes)

    return archive
