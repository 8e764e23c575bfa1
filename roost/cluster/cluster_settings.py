"""What a Ray head or node of a Roost cluster is started with: the settings, the resources and
labels a node advertises, the `ray start` command line and its environment.

Pure: no I/O and no Ray import. A node advertises its memory budget as the custom resource
`roost_memory`, in bytes (as Ray's own `memory`), its region as `roost_region_<name>: 1`, and
both, with its name, as node labels (`roost-region`, `roost-node`, `roost-role`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from roost.errors import UsageError

RAY_DEFAULT_PORT = 6379
MEMORY_RESOURCE = "roost_memory"  # bytes of instance memory limits a node offers
REGION_RESOURCE_PREFIX = "roost_region_"
REGION_LABEL = "roost-region"
NODE_LABEL = "roost-node"
ROLE_LABEL = "roost-role"
HEAD_ROLE = "head"
NODE_ROLE = "node"
# Roost passes no objects through Ray's object store (instances talk HTTP): its floor is enough,
# instead of Ray's default of 30 % of RAM in /dev/shm per node.
OBJECT_STORE_BYTES = 100 * 1024**2
REGION_RE = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]|[a-z]")
REGION_RULE = "1 to 32 characters: lowercase letters, digits and '-', starting with a letter"
# Ray's session folders hold Unix sockets (`<temp>/session_<date>_<pid>/sockets/plasma_store`),
# whose paths the kernel caps at 107 bytes: the session's own part takes 62 of them.
TEMP_DIR_MAX = 45
AGENT_SOCKET_NAME = "agent.sock"
AGENT_SOCKET_ENV = "ROOST_AGENT_SOCKET"  # where a Ray worker on a machine finds that machine's daemon
DEFAULT_NODE_EDGE_HOST = "0.0.0.0"  # noqa: S104 - a node's public edge serves the world, as the head's
DEFAULT_NODE_EDGE_PORT = 8080
DEFAULT_PEER_PORT = 8081


@dataclass(frozen=True, slots=True)
class HealthChecks:
    """How the head's Ray (GCS) watches each node: a check every `period` seconds that must
    answer within `timeout`; `failures` missed in a row mark the node dead. Ray's defaults
    (3 s, 10 s, 5) took 64 s to mark a cut-off node dead; these take a few seconds."""

    period: float = 1.0
    timeout: float = 1.0
    failures: int = 3

    def system_config(self) -> dict[str, int]:
        return {
            "health_check_period_ms": round(self.period * 1000),
            "health_check_timeout_ms": round(self.timeout * 1000),
            "health_check_failure_threshold": self.failures,
        }


@dataclass(frozen=True, slots=True)
class HeadSettings:
    """`roost serve --cluster`: Ray's head on `address:port` (the address nodes reach it at)."""

    home: Path
    address: str
    port: int = RAY_DEFAULT_PORT
    health: HealthChecks = HealthChecks()
    region: str = "main"  # the head runs instances too: its region and the memory it offers them
    memory_budget: int = 0

    @property
    def gcs_address(self) -> str:
        return join_host_port(self.address, self.port)


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """`roost node join`: a worker node of the head at `head` (host:port)."""

    home: Path
    head: str
    region: str
    memory_budget: int
    token_file: Path
    name: str
    address: str | None = None  # this machine's address on the cluster's network; None: Ray's guess
    edge_host: str = DEFAULT_NODE_EDGE_HOST  # the public edge's and the peer door's address
    edge_port: int = DEFAULT_NODE_EDGE_PORT  # the public edge: clients come here, for every app
    peer_port: int = DEFAULT_PEER_PORT  # the peer door: other edges forward here for this node's instances


def cluster_dir(home: Path) -> Path:
    """Everything of the cluster under the Roost home: the token, Ray's sessions and logs."""
    return home / "cluster"


def token_path(home: Path) -> Path:
    return cluster_dir(home) / "token"


def agent_socket_path(home: Path) -> Path:
    """The daemon's owner-only socket, where the agent actor on the same machine reaches its `NodeHost`."""
    return cluster_dir(home) / AGENT_SOCKET_NAME


def ray_temp_dir(home: Path) -> Path:
    return cluster_dir(home) / "ray"


def ray_address_file(temp_dir: Path) -> Path:
    """Where `ray start` notes the cluster it last started. A head refuses to start while that
    address is also in any local process's command line, which a node on the same machine (or a
    raylet still waiting for the dead head) has: the note is stale once Roost stopped that run."""
    return temp_dir / "ray_current_cluster"


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_head_address(text: str) -> str:
    """'10.0.0.1' or '10.0.0.1:6380' -> 'host:port' of the head's Ray (GCS)."""
    value = text.strip()
    if value.startswith("["):  # [v6]:port
        host, _, rest = value[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    else:
        host, port_text = value, ""
    hint = "give the head's address as HOST or HOST:PORT, e.g. 10.0.0.1:6379"
    if not host:
        raise UsageError("no head address", hint=hint)
    try:
        port = int(port_text) if port_text else RAY_DEFAULT_PORT
    except ValueError:
        raise UsageError(f"{text!r} is not HOST:PORT", hint=hint) from None
    if not 0 < port < 65536:
        raise UsageError(f"{text!r}: the port must be between 1 and 65535", hint=hint)
    return join_host_port(host, port)


def check_region(region: str) -> str:
    if REGION_RE.fullmatch(region) is None:
        raise UsageError(f"{region!r} is not a region name", hint=f"a region name is {REGION_RULE}, e.g. eu-west")
    return region


def check_temp_dir(home: Path) -> Path:
    """Ray's temp folder under `home`, refused when its sockets' paths would be too long."""
    path = ray_temp_dir(home)
    if len(str(path)) > TEMP_DIR_MAX:
        raise UsageError(
            f"the Roost home {home} is too deep for Ray: its sockets under {path} would pass the kernel's "
            "107-byte limit on Unix socket paths",
            hint=f"use a home whose path is at most {TEMP_DIR_MAX - len('/cluster/ray')} characters long (--home)",
        )
    return path


def node_resources(region: str, memory_budget: int) -> dict[str, float]:
    return {MEMORY_RESOURCE: float(memory_budget), f"{REGION_RESOURCE_PREFIX}{region}": 1.0}


def labels(values: Mapping[str, str]) -> str:
    """Ray's `--labels` form: 'k1=v1,k2=v2'."""
    return ",".join(f"{key}={value}" for key, value in values.items())


def _common_argv(python: str, temp_dir: Path) -> list[str]:
    return [
        python,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--block",  # in the foreground: its exit is the node's; it stops Ray's processes on SIGTERM
        "--temp-dir",
        str(temp_dir),
        "--disable-usage-stats",
        "--include-log-monitor",
        "false",  # nobody reads Ray's logs through a driver
        "--object-store-memory",
        str(OBJECT_STORE_BYTES),
    ]


def head_argv(python: str, settings: HeadSettings, temp_dir: Path) -> list[str]:
    return [
        *_common_argv(python, temp_dir),
        "--head",
        "--node-ip-address",
        settings.address,
        "--port",
        str(settings.port),
        "--include-dashboard",
        "false",
        "--dashboard-host",
        "127.0.0.1",
        "--no-monitor",  # Ray's autoscaler: Roost adds no machines itself
        "--system-config",
        json.dumps(settings.health.system_config()),
        "--resources",
        json.dumps(node_resources(settings.region, settings.memory_budget)),
        "--labels",
        labels({ROLE_LABEL: HEAD_ROLE, NODE_LABEL: HEAD_ROLE, REGION_LABEL: settings.region}),
    ]


def node_argv(python: str, settings: NodeSettings, temp_dir: Path) -> list[str]:
    argv = [
        *_common_argv(python, temp_dir),
        "--address",
        settings.head,
        "--resources",
        json.dumps(node_resources(settings.region, settings.memory_budget)),
        "--labels",
        labels({ROLE_LABEL: NODE_ROLE, NODE_LABEL: settings.name, REGION_LABEL: settings.region}),
    ]
    if settings.address:
        argv += ["--node-ip-address", settings.address]
    return argv


def ray_environment(token_file: Path, home: Path, inherited: Mapping[str, str]) -> dict[str, str]:
    """The explicit environment of Ray's processes: token authentication with Roost's token file
    (Ray never writes one of its own then), Ray's stray files under the cluster folder, and the
    daemon's agent socket (Ray's workers inherit it: the agent actor on this machine reads it)."""
    env = {key: inherited[key] for key in ("PATH", "LANG", "LC_ALL", "TZ") if key in inherited}
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token_file),
        RAY_USAGE_STATS_ENABLED="0",
        HOME=str(cluster_dir(home)),
    )
    env[AGENT_SOCKET_ENV] = str(agent_socket_path(home))
    return env
