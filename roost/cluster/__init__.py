"""Roost on several machines, on Ray: the head beside `roost serve --cluster` and the node of
`roost node join`. Only those two code paths import this package; importing it imports no Ray
(only `gcs.py` does, when the head first reads Ray's node table).
"""

from roost.cluster.cluster_settings import (
    DEFAULT_PORTS,
    MEMORY_RESOURCE,
    RAY_DEFAULT_PORT,
    REGION_LABEL,
    REGION_RESOURCE_PREFIX,
    HeadSettings,
    HealthChecks,
    NodeSettings,
    RayPorts,
    check_region,
    closed_to_apps,
    parse_head_address,
    ray_ports,
    token_path,
)
from roost.cluster.head import ClusterHead
from roost.cluster.join import run_node

__all__ = [
    "DEFAULT_PORTS",
    "MEMORY_RESOURCE",
    "RAY_DEFAULT_PORT",
    "REGION_LABEL",
    "REGION_RESOURCE_PREFIX",
    "ClusterHead",
    "HeadSettings",
    "HealthChecks",
    "NodeSettings",
    "RayPorts",
    "check_region",
    "closed_to_apps",
    "parse_head_address",
    "ray_ports",
    "run_node",
    "token_path",
]
