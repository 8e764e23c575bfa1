"""The cluster's nodes: GET /v1/nodes on a cluster head (`roost serve --cluster`).

The API never imports the cluster package: the daemon hands `create_api` whatever implements
`ClusterView` (the `ClusterHead`), or None when this daemon is not a cluster head.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, Request

from roost.api.schemas import RecordOut
from roost.errors import Conflict
from roost.model import ClusterNode

router = APIRouter(tags=["cluster"])


class ClusterView(Protocol):
    """What the API reads of a cluster: its machines, alive or dead. Must not block the loop."""

    async def nodes(self) -> list[ClusterNode]: ...


class NodeOut(RecordOut):
    name: str
    role: str
    region: str
    memory_budget: int
    address: str
    alive: bool
    node_id: str
    started_at: float
    ended_at: float | None
    reason: str
    instances: int
    memory_used: int


def _cluster(request: Request) -> ClusterView:
    cluster: ClusterView | None = request.app.state.cluster
    if cluster is None:
        raise Conflict(
            "this daemon is not a cluster head",
            hint="start it with `roost serve --cluster --cluster-address ADDRESS` (see docs/cluster.md)",
        )
    return cluster


@router.get("/v1/nodes", response_model=list[NodeOut])
async def list_nodes(request: Request) -> list[NodeOut]:
    """Each machine of the cluster (the newest Ray node it joined as): role, region, memory budget
    and the part of it in use in bytes, instances running there, address, alive or dead and since when."""
    return [NodeOut.read(node) for node in await _cluster(request).nodes()]
