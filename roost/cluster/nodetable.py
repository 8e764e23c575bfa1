"""From Ray's node table to Roost's: one row per machine, the newest Ray node it joined as.

A machine that rejoins gets a new Ray node id while its old one stays in Ray's table, dead; so
rows are keyed by the `roost-node` label and the newest start wins. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from roost.cluster.cluster_settings import HEAD_ROLE, MEMORY_RESOURCE, NODE_LABEL, REGION_LABEL, ROLE_LABEL
from roost.model import ClusterNode


@dataclass(frozen=True, slots=True)
class RayNode:
    """What Ray's GCS says of one node (ids in hex, times in milliseconds, 0 for none)."""

    node_id: str
    address: str
    alive: bool
    resources: Mapping[str, float]
    labels: Mapping[str, str]
    start_ms: int
    end_ms: int
    death: str = ""


def cluster_nodes(ray_nodes: Iterable[RayNode]) -> list[ClusterNode]:
    """Roost's nodes: the newest Ray node of each machine, the head first, then by region and name.
    Ray nodes that no Roost command started (no `roost-node` label) are listed by their id."""
    newest: dict[str, RayNode] = {}
    for node in ray_nodes:
        name = node.labels.get(NODE_LABEL) or node.node_id[:12]
        known = newest.get(name)
        if known is None or node.start_ms > known.start_ms:
            newest[name] = node
    rows = [_row(name, node) for name, node in newest.items()]
    return sorted(rows, key=lambda row: (row.role != HEAD_ROLE, row.region, row.name))


def _row(name: str, node: RayNode) -> ClusterNode:
    return ClusterNode(
        name=name,
        role=node.labels.get(ROLE_LABEL, "ray"),
        region=node.labels.get(REGION_LABEL, ""),
        memory_budget=int(node.resources.get(MEMORY_RESOURCE, 0)),
        address=node.address,
        alive=node.alive,
        node_id=node.node_id,
        started_at=node.start_ms / 1000,
        ended_at=node.end_ms / 1000 if node.end_ms and not node.alive else None,
        reason=node.death,
    )
