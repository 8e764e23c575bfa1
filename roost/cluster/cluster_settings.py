"""What a Ray head or node of a Roost cluster is started with: the settings, the resources and
labels a node advertises, the ports Ray may open, the `ray start` command line and its environment.

Pure: no I/O and no Ray import. A node advertises its memory budget as the custom resource
`roost_memory`, in bytes (as Ray's own `memory`), its region as `roost_region_<name>: 1`, and
both, with its name, as node labels (`roost-region`, `roost-node`, `roost-role`). Every TCP port
Ray listens on, on the head and on each node, lies in one block (`--cluster-ports`, 7300-7399 by
default), which the sandbox's firewall closes to the apps on every address (`closed_to_apps`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from roost.errors import UsageError
from roost.runtime.ports import PortRange

# Every port Ray opens, on every machine of the cluster: the same block on each by default. Not
# Ray's own 6379, which is Redis's: the firewall refuses the apps these ports on every address.
DEFAULT_PORTS = PortRange(7300, 7399)
RAY_DEFAULT_PORT = DEFAULT_PORTS.first  # the head's GCS port (`roost node join HEAD` without a port)
WORKERS_LEAST = 16  # Ray worker processes per machine: Roost's agent actor, the head's driver, a few idle
MEMORY_RESOURCE = "roost_memory"  # bytes of instance memory limits a node offers
REGION_RESOURCE_PREFIX = "roost_region_"
REGION_LABEL = "roost-region"
SELF_CHECK_MS = 2000  # how often a raylet asks its head whether it knows it (Ray's default: a minute)
HEAD_AWAY_SECONDS = 5  # a raylet (or the head's driver) without its head that long exits, to join its next run
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
class RayPorts:
    """Where each of Ray's listeners goes on one machine, every one inside `block`. The layout is
    the same on the head and on each node (a node leaves the GCS's and the client server's ports
    unused), so one table says what to open between machines; `ray_ports` makes it. Example::

        ray_ports((7300, 7399)).node_manager == 7301  # and workers 7308-7399
    """

    block: PortRange
    gcs: int  # the head's GCS (`--cluster-port`): where nodes and drivers join
    node_manager: int  # the raylet
    object_manager: int
    metrics_export: int
    dashboard_agent_grpc: int
    dashboard_agent_listen: int
    runtime_env_agent: int
    client_server: int  # Ray Client, on the head
    workers: tuple[int, ...]  # one per Ray worker process (the agent actor, the head's driver, idle ones)

    def others(self) -> list[int]:
        """Every port of the block but the GCS's."""
        return [port for port in range(self.block.first, self.block.last + 1) if port != self.gcs]


FIXED_PORTS = 8  # RayPorts' fields from `gcs` to `client_server`
PORTS_LEAST = FIXED_PORTS + WORKERS_LEAST
PORTS_HINT = (
    f"give --cluster-ports a block of at least {PORTS_LEAST} ports that nothing else on the machine uses, "
    f"the same on every machine of the cluster (default {DEFAULT_PORTS.describe()})"
)


Apart = Mapping[str, tuple[int, int] | int | None]
"""What must not share a port with Ray's block, by flag: `{"--instance-ports": (20000, 29999),
"--port": 8080}`; None or 0 for a port the kernel picks."""


def ray_ports(
    block_range: tuple[int, int] | None = None, gcs: int | None = None, apart: Apart | None = None
) -> RayPorts:
    """The layout of `block_range` (first, last; None: DEFAULT_PORTS): the GCS on `gcs` (default:
    the block's first port), the other fixed listeners on the next ports, the workers on the
    rest. Raises UsageError naming the flags to change."""
    block = PortRange(*block_range) if block_range is not None else DEFAULT_PORTS
    if len(block) < PORTS_LEAST:
        raise UsageError(
            f"--cluster-ports {block.describe()} holds {len(block)} ports; Ray needs at least {PORTS_LEAST}",
            hint=PORTS_HINT,
        )
    gcs = block.first if gcs is None else gcs
    if gcs not in block:
        raise UsageError(
            f"--cluster-port {gcs} lies outside --cluster-ports {block.describe()}",
            hint="every port Ray opens lies in that block, which the sandbox closes to apps: choose a --cluster-port "
            "inside it, or move the block with --cluster-ports FIRST-LAST",
        )
    for flag, other in (apart or {}).items():
        _check_apart(block, flag, other)
    rest = [port for port in range(block.first, block.last + 1) if port != gcs]
    return RayPorts(
        block,
        gcs,
        node_manager=rest[0],
        object_manager=rest[1],
        metrics_export=rest[2],
        dashboard_agent_grpc=rest[3],
        dashboard_agent_listen=rest[4],
        runtime_env_agent=rest[5],
        client_server=rest[6],
        workers=tuple(rest[FIXED_PORTS - 1 :]),
    )


def _check_apart(block: PortRange, flag: str, other: tuple[int, int] | int | None) -> None:
    if not other:
        return
    first, last = (other, other) if isinstance(other, int) else other
    if block.overlaps(first, last):
        what = str(first) if first == last else f"{first}-{last}"
        raise UsageError(
            f"--cluster-ports {block.describe()} overlaps {flag} {what}",
            hint=f"move one of them: apps may not connect to any port of --cluster-ports; {PORTS_HINT}",
        )


DEFAULT_LAYOUT = ray_ports()


@dataclass(frozen=True, slots=True)
class HeadSettings:
    """`roost serve --cluster`: Ray's head on `address:ports.gcs` (the address nodes reach it at)."""

    home: Path
    address: str
    ports: RayPorts = DEFAULT_LAYOUT
    health: HealthChecks = HealthChecks()
    region: str = "main"  # the head runs instances too: its region and the memory it offers them
    memory_budget: int = 0

    @property
    def port(self) -> int:
        return self.ports.gcs

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
    ports: RayPorts = DEFAULT_LAYOUT  # every port Ray opens here (`--cluster-ports`)


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


def closed_to_apps(settings: HeadSettings | NodeSettings) -> tuple[PortRange, ...]:
    """The TCP ports no app (nor build) on this machine may connect to, on any address: Ray's
    block here (the same block on every machine covers the others'), and a node's head's GCS
    port when it lies outside that block. The sandbox's `SandboxSettings.closed_ports`."""
    closed = [settings.ports.block]
    if isinstance(settings, NodeSettings):
        head_port = int(settings.head.rpartition(":")[2])
        if head_port not in settings.ports.block:
            closed.append(PortRange(head_port, head_port))
    return tuple(closed)


def parse_head_address(text: str, default_port: int = RAY_DEFAULT_PORT) -> str:
    """'10.0.0.1' or '10.0.0.1:7301' -> 'host:port' of the head's Ray (GCS); a port left out is
    `default_port` (the first of the node's --cluster-ports: the head's by default)."""
    value = text.strip()
    if value.startswith("["):  # [v6]:port
        host, _, rest = value[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    else:
        host, port_text = value, ""
    hint = f"give the head's address as HOST or HOST:PORT, e.g. 10.0.0.1:{RAY_DEFAULT_PORT}"
    if not host:
        raise UsageError("no head address", hint=hint)
    try:
        port = int(port_text) if port_text else default_port
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


def head_argv(python: str, settings: HeadSettings, temp_dir: Path, ray_client: bool = False) -> list[str]:
    """`ray_client`: Ray Client's dependencies are installed, so Ray starts its client server
    (on 10001 unless told otherwise); Ray refuses the port flag without them."""
    ports = settings.ports
    client = ["--ray-client-server-port", str(ports.client_server)] if ray_client else []
    return [
        *_common_argv(python, temp_dir),
        "--head",
        "--node-ip-address",
        settings.address,
        "--port",
        str(ports.gcs),
        *client,
        *_port_argv(ports),
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
        *_port_argv(settings.ports),
        "--resources",
        json.dumps(node_resources(settings.region, settings.memory_budget)),
        "--labels",
        labels({ROLE_LABEL: NODE_ROLE, NODE_LABEL: settings.name, REGION_LABEL: settings.region}),
    ]
    if settings.address:
        argv += ["--node-ip-address", settings.address]
    return argv


def _port_argv(ports: RayPorts) -> list[str]:
    """The ports every machine's Ray opens, all in the block (Ray would pick most of them itself,
    anywhere, and its workers from 10002-19999)."""
    argv = [
        "--node-manager-port",
        str(ports.node_manager),
        "--object-manager-port",
        str(ports.object_manager),
        "--metrics-export-port",
        str(ports.metrics_export),
        "--dashboard-agent-grpc-port",
        str(ports.dashboard_agent_grpc),
        "--dashboard-agent-listen-port",
        str(ports.dashboard_agent_listen),
        "--runtime-env-agent-port",
        str(ports.runtime_env_agent),
    ]
    workers = ports.workers
    if workers == tuple(range(workers[0], workers[-1] + 1)):
        return [*argv, "--min-worker-port", str(workers[0]), "--max-worker-port", str(workers[-1])]
    return [*argv, "--worker-port-list", ",".join(map(str, workers))]  # the GCS's port among them


def ray_environment(token_file: Path, home: Path, inherited: Mapping[str, str]) -> dict[str, str]:
    """The explicit environment of Ray's processes (and of the head's driver, raybridge): token
    authentication with Roost's token file
    (Ray never writes one of its own then), Ray's stray files under the cluster folder, the
    daemon's agent socket (Ray's workers inherit it: the agent actor on this machine reads it),
    and a short wait for a head that went away: a raylet whose head (GCS) is gone for that long
    exits, and `roost node join` starts it again into the head's new run (Ray's default, 60 s,
    left a node out of a restarted head's cluster for a minute). A raylet that reconnected in
    time to a head that restarted (a new cluster there, which does not know it) learns so at its
    next self-check and exits, to join again: every 2 s, not Ray's minute. No drain on SIGTERM:
    Ray's waits (30 s by default) for the node's work to end, and the agent actor the head keeps
    there never ends, so `roost node join` took 30 s to stop; Roost drains its instances itself."""
    env = {key: inherited[key] for key in ("PATH", "LANG", "LC_ALL", "TZ") if key in inherited}
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token_file),
        RAY_USAGE_STATS_ENABLED="0",
        RAY_gcs_rpc_server_reconnect_timeout_s=str(HEAD_AWAY_SECONDS),
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",
        RAY_raylet_liveness_self_check_interval_ms=str(SELF_CHECK_MS),
        HOME=str(cluster_dir(home)),
    )
    env[AGENT_SOCKET_ENV] = str(agent_socket_path(home))
    return env
