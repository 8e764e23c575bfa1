"""Roost on several machines, on Ray: the head beside `roost serve --cluster` and the node of
`roost node join`. Only those two code paths import this package; importing it imports no Ray
(only `gcs.py` does, when the head first reads Ray's node table).
"""

from roost.cluster.cluster_settings import (
    MEMORY_RESOURCE,
    RAY_DEFAULT_PORT,
    REGION_LABEL,
    REGION_RESOURCE_PREFIX,
    HeadSettings,
    HealthChecks,
    NodeSettings,
    check_region,
    parse_head_address,
    token_path,
)
from roost.cluster.edgeview import EdgeView, LocalOnly
from roost.cluster.head import ClusterHead
from roost.cluster.join import run_node

__all__ = [
    "MEMORY_RESOURCE",
    "RAY_DEFAULT_PORT",
    "REGION_LABEL",
    "REGION_RESOURCE_PREFIX",
    "ClusterHead",
    "EdgeView",
    "HeadSettings",
    "HealthChecks",
    "LocalOnly",
    "NodeSettings",
    "check_region",
    "parse_head_address",
    "run_node",
    "token_path",
]
