"""Roost on several machines, on Ray: the head beside `roost serve --cluster` and the node of
`roost node join`. Only those two code paths import this package; importing it imports no Ray
(only `gcs.py` does, when the head first reads Ray's node table).
"""

from roost.cluster.agent import AgentServer, NodeAgent
from roost.cluster.cluster_settings import (
    AGENT_SOCKET_ENV,
    DEFAULT_PEER_PORT,
    DEFAULT_PORTS,
    MEMORY_RESOURCE,
    RAY_DEFAULT_PORT,
    REGION_LABEL,
    REGION_RESOURCE_PREFIX,
    HeadSettings,
    HealthChecks,
    NodeSettings,
    RayPorts,
    agent_socket_path,
    check_region,
    closed_to_apps,
    parse_head_address,
    ray_ports,
    token_path,
)
from roost.cluster.edgeview import EdgeView, LocalOnly
from roost.cluster.head import ClusterHead
from roost.cluster.join import run_node, serve_node
from roost.cluster.nodedaemon import NodeDaemon
from roost.cluster.nodehost import BuiltPaths, LocalNodeHost, NodeEvents

__all__ = [
    "AGENT_SOCKET_ENV",
    "DEFAULT_PEER_PORT",
    "DEFAULT_PORTS",
    "MEMORY_RESOURCE",
    "RAY_DEFAULT_PORT",
    "REGION_LABEL",
    "REGION_RESOURCE_PREFIX",
    "AgentServer",
    "BuiltPaths",
    "ClusterHead",
    "EdgeView",
    "HeadSettings",
    "HealthChecks",
    "LocalNodeHost",
    "LocalOnly",
    "NodeAgent",
    "NodeDaemon",
    "NodeEvents",
    "NodeSettings",
    "RayPorts",
    "agent_socket_path",
    "check_region",
    "closed_to_apps",
    "parse_head_address",
    "ray_ports",
    "run_node",
    "serve_node",
    "token_path",
]
