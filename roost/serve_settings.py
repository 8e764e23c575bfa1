"""Daemon settings: where Roost keeps its state and where it listens.

Defaults live here once; the CLI maps flags and environment variables onto
`ServeSettings`. No I/O beyond reading the environment for defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 7070
DEFAULT_EDGE_HOST = "0.0.0.0"  # noqa: S104 - the edge serves the world by design
DEFAULT_EDGE_PORT = 8080
DEFAULT_DOMAIN = "localhost"
SOCKET_NAME = "roost.sock"
LOCK_NAME = "roost.lock"
DB_NAME = "roost.db"
DEFAULT_UID_FIRST = 200000  # per-app uids when run as root: first and last of the range
DEFAULT_UID_LAST = 265535
DEFAULT_INSTANCE_PORT_FIRST = 20000  # every instance listens on a port of this range (below the kernel's ephemeral one)
DEFAULT_INSTANCE_PORT_LAST = 29999
DEFAULT_BUILD_LIMIT = 1024**3  # bytes an uploaded source archive may unpack to
DEFAULT_BUILD_MEMORY = 2 * 1024**3  # each build's cgroup: enough for a numpy/pandas install
DEFAULT_BUILD_CPU = float(
    os.cpu_count() or 1
)  # cores: all of them; uv and compileall work in parallel, and a 1-core cap doubled build times
DEFAULT_BUILD_PIDS = 512  # processes and threads: uv's, a compiler's; a fork bomb stops here
DEFAULT_BUILD_TIMEOUT = 15 * 60.0  # seconds, unpack to compiled bytecode
DEFAULT_MAX_CONNECTIONS = 10_000  # open client connections at the edge, in all
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 256  # and per client address (IPv6: per /64)


DEFAULT_HOME_TEXT = "$XDG_DATA_HOME/roost, or ~/.local/share/roost"
SYSTEM_HOME = Path("/var/lib/roost")  # contrib/roost.service's home: the CLI looks there too


def default_home() -> Path:
    """`$ROOST_HOME`, else `$XDG_DATA_HOME/roost`, else `~/.local/share/roost`: the same for
    `roost serve` and the CLI, so a daemon started without a home is found without one."""
    if os.environ.get("ROOST_HOME"):
        return Path(os.environ["ROOST_HOME"]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "roost"


def homes_to_search() -> list[Path]:
    """Where the CLI looks for a daemon's socket, in order: `$ROOST_HOME` alone when set, else the
    user's default home, then the system service's."""
    home = default_home()
    return [home] if os.environ.get("ROOST_HOME") or home == SYSTEM_HOME else [home, SYSTEM_HOME]


LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True, slots=True)
class ServeSettings:
    home: Path
    edge_host: str = DEFAULT_EDGE_HOST
    edge_port: int = DEFAULT_EDGE_PORT
    api_host: str = DEFAULT_API_HOST
    api_port: int = DEFAULT_API_PORT
    domain: str = DEFAULT_DOMAIN
    require_password: bool = False
    trust_proxy: tuple[str, ...] = field(default_factory=tuple)
    timeout_build_check: float = 30.0
    trust_loopback: bool = False
    insecure: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    https_port: int | None = None  # the edge's HTTPS door for custom domains; turns ACME on
    acme_directory: str = LETS_ENCRYPT
    acme_email: str | None = None
    acme_challenge: str = "http-01"  # or "tls-alpn-01", answered on the HTTPS port (port 80 closed)
    acme_ca_bundle: Path | None = None  # trust for a private ACME server's own HTTPS (pebble in tests)
    api_domain: str | None = None  # the admin API's own name: HTTPS with an ACME certificate for it
    acme_renew_after: float | None = None  # tests only: renew at this age instead of 2/3 of the lifetime
    uv_cache: Path | None = None  # default: home/cache/uv
    keep: int = 10
    cron_speed: float = 1.0
    scale_window: float = 60.0
    scale_panic_window: float = 6.0
    scale_down_delay: float = 30.0
    memory_budget: int = 0  # bytes of instance memory limits allowed in all; 0: no budget
    zygote_idle: float = 1800.0  # a zygote nothing forked from this long is evicted
    client_rate: float = 1000.0  # edge: requests per second per client address; 0: no rate limit
    uid_first: int = DEFAULT_UID_FIRST  # the range each app's own uid comes from (root only)
    uid_last: int = DEFAULT_UID_LAST
    instance_port_first: int = DEFAULT_INSTANCE_PORT_FIRST
    instance_port_last: int = DEFAULT_INSTANCE_PORT_LAST
    firewall: bool = True  # root: an nftables table closes the instance ports to apps and other hosts
    build_allow: tuple[str, ...] = ()  # root with the firewall: HOST[:PORT] builds may reach besides the index
    limit_build_unpacked: int = DEFAULT_BUILD_LIMIT  # builder: bytes a source archive may unpack to
    build_sandbox: bool = True  # builds run as the app's uid in its jail; False: as the daemon, unconfined
    build_memory: int = DEFAULT_BUILD_MEMORY
    build_cpu: float = DEFAULT_BUILD_CPU
    build_pids: int = DEFAULT_BUILD_PIDS
    timeout_build: float = DEFAULT_BUILD_TIMEOUT
    limit_connections: int = DEFAULT_MAX_CONNECTIONS  # edge: open client connections in all
    limit_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT  # edge: per client address
    login_lockout: float = 300.0  # admin API: how long a source with too many failed passwords stays locked
    cluster_address: str | None = None  # `--cluster`: the address the cluster's Ray head listens on; None: no cluster
    cluster_port: int | None = None  # the Ray head's (GCS) port there; None: the first of `cluster_ports`
    cluster_ports: tuple[int, int] | None = None  # first, last: every port Ray opens; None: the cluster's default
    cluster_health_period: float = 1.0  # Ray's node health checks: every period, within timeout, dead after failures
    cluster_health_timeout: float = 1.0
    cluster_health_failures: int = 3
    cluster_region: str = "main"  # the head's own region: it runs instances too
    cluster_peer_port: int = 8081  # where other machines' edges forward requests for this one's instances

    @property
    def passwords_path(self) -> Path:
        return self.home / "passwords"

    @property
    def socket_path(self) -> Path:
        return self.home / SOCKET_NAME

    @property
    def lock_path(self) -> Path:
        return self.home / LOCK_NAME

    @property
    def db_path(self) -> Path:
        return self.home / DB_NAME
