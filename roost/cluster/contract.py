"""What the head and a node say to each other: pure records, and the `NodeHost` protocol a node
serves to the head through its agent actor.

The head's `ClusterRuntime` asks Ray for one single-bundle placement group per web instance;
each placement group is a reservation of the app's memory limit on the node Ray chose. A node
runs as many instances of a deployment as it holds reservations for (its `Assignment`): its own
`LocalRuntime` keeps exactly that many (zygote forks, sandbox, limits, logs as on one machine),
and the head's autoscaler alone decides how many there are in all. Every edge (the head's and
each node's) serves every app: the head sends each node the whole `ClusterMap` (routes, and
which node serves what) after every change; nodes send back a `NodeReport` when asked.

Records cross Ray (pickled by Ray between the head and the agent actor) and the node's owner-only
Unix socket (pickled between the actor and the node's daemon), both within one version of Roost.
Pure: no I/O, no Ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from roost.edge.routes import RouteTable
from roost.model import AppConfig, AppName, DeploymentId, InstanceId
from roost.runtime.protocol import InstanceInfo, Isolation

NodeName = str
"""A node's name in the cluster: `roost node join --name` (the machine's host name by default);
the head's own is `head`."""


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who a node is, as its daemon says: name, region, the address of its peer door (host:port,
    where other edges forward requests for its instances), its memory budget in bytes."""

    name: NodeName
    region: str
    door: str
    memory_budget: int


@dataclass(frozen=True, slots=True)
class Artifact:
    """A deployment as a node needs it: the registry's digest of its archive (sha256, hex) and
    what control handed the runtime (config, env). The archive's bytes travel beside it."""

    app: AppName
    deployment: DeploymentId
    digest: str
    config: AppConfig
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assignment:
    """How many web instances of a prepared deployment a node runs now (its placement groups
    there). The node keeps exactly `count` (a crashed one is started again, with back-off); 0
    keeps the deployment prepared but runs nothing."""

    deployment: DeploymentId
    count: int


@dataclass(frozen=True, slots=True)
class Serving:
    """One node's share of one deployment, as every edge is told: where to forward (its peer
    door), its region, and how many requests its ready instances take at once."""

    node: NodeName
    region: str
    door: str
    ready: int
    concurrency: int

    @property
    def slots(self) -> int:
        return self.ready * self.concurrency


@dataclass(frozen=True, slots=True)
class ClusterMap:
    """What the head tells every node, whole, after each change (`version` grows): the routes,
    who serves each deployment, and the head's public edge (host:port), where an edge sends a
    request that no instance in the cluster has room for (the head starts one)."""

    version: int
    routes: RouteTable
    serving: Mapping[DeploymentId, tuple[Serving, ...]]
    head_edge: str


@dataclass(frozen=True, slots=True)
class Demand:
    """One deployment's demand at one node's edges: requests in flight or waiting there, and the
    wall-clock time of the last one (None: none yet)."""

    waiting: int
    last_request_at: float | None


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """An event of the node's runtime (`instance.crashed`, ...), for the head's store."""

    app: AppName
    kind: str
    message: str
    data: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class NodeReport:
    """A node's state when the head asks: its instances (every state), the demand at its edges,
    the events since its last report, and the deployments it has prepared."""

    identity: NodeIdentity
    instances: tuple[InstanceInfo, ...]
    demand: Mapping[DeploymentId, Demand]
    events: tuple[NodeEvent, ...]
    prepared: frozenset[DeploymentId]


class NodeHost(Protocol):
    """What a node's daemon does for the head (the head's own daemon is a node too). Called on
    the daemon's event loop; every method is idempotent, so the head may call it again after a
    lost answer."""

    async def hello(self) -> NodeIdentity:
        """Who this node is."""

    async def prepare(self, artifact: Artifact, archive: bytes) -> float:
        """Verify `archive` against `artifact.digest` (raises RoostError on a mismatch), keep it
        in this node's registry and build the deployment (or reuse its venv); seconds taken
        (0 when it was prepared already). Runs nothing yet."""

    async def assign(self, assignment: Assignment) -> None:
        """Run `count` web instances of a prepared deployment (raises RoostError when it is not)."""

    async def stop_instance(self, instance: InstanceId, reason: str) -> None:
        """Drain and stop one instance now; the caller lowers the assignment after."""

    async def retire(self, deployment: DeploymentId) -> None:
        """Stop everything of a deployment and forget it (its build stays on disk until gc)."""

    async def report(self) -> NodeReport:
        """This node's state; the events in it are not reported again."""

    async def show(self, view: ClusterMap) -> None:
        """The cluster's newest view, for this node's edges (an older `version` is ignored)."""

    async def isolation(self, deployment: DeploymentId | None) -> dict[InstanceId, Isolation]:
        """The read-back of this node's live instances (of `deployment`, or all)."""
