"""`roost serve`: flags and environment onto ServeSettings, then the daemon."""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path

import click
import psutil

from roost.errors import UsageError
from roost.serve_settings import (
    DEFAULT_API_HOST,
    DEFAULT_API_PORT,
    DEFAULT_BUILD_CPU,
    DEFAULT_DOMAIN,
    DEFAULT_EDGE_HOST,
    DEFAULT_EDGE_PORT,
    DEFAULT_INSTANCE_PORT_FIRST,
    DEFAULT_INSTANCE_PORT_LAST,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    DEFAULT_UID_FIRST,
    DEFAULT_UID_LAST,
    LETS_ENCRYPT,
    LETS_ENCRYPT_STAGING,
    ServeSettings,
    default_home,
)
from roost.units import parse_duration, parse_size

UID_LOWEST = 1000  # below: system accounts on every distribution
UID_HIGHEST = 2**32 - 2  # (uid_t)-1 means "no uid" to the kernel
BUILD_LIMIT_LOWEST = 1024 * 1024
BUILD_MEMORY_LOWEST = 64 * 1024 * 1024
PORT_LOWEST = 1024  # an app's uid cannot bind below
PORT_HIGHEST = 65535
# roost.cluster.DEFAULT_PORTS, which this module may not import (single-machine Roost never loads the
# cluster package); tests/unit/cluster/test_cluster_ports.py checks that the two agree.
CLUSTER_PORTS_DEFAULT = "7300-7399"


def _duration(flag: str, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r}: {flag} takes {exc}") from exc


def _announce(line: str) -> None:
    sys.stdout.write(f"roost: {line}\n")
    sys.stdout.flush()


@click.command("serve")
@click.option("--home", type=click.Path(path_type=Path), envvar="ROOST_HOME", help="State directory [env ROOST_HOME].")
@click.option("--host", default=DEFAULT_EDGE_HOST, show_default=True, envvar="ROOST_HOST", help="Edge address.")
@click.option("--port", default=DEFAULT_EDGE_PORT, show_default=True, envvar="ROOST_PORT", type=int, help="Edge port.")
@click.option("--api-host", default=DEFAULT_API_HOST, show_default=True, envvar="ROOST_API_HOST")
@click.option("--api-port", default=DEFAULT_API_PORT, show_default=True, envvar="ROOST_API_PORT", type=int)
@click.option(
    "--domain", default=DEFAULT_DOMAIN, show_default=True, envvar="ROOST_DOMAIN", help="Apps at <app>.DOMAIN."
)
@click.option("--require-password", is_flag=True, envvar="ROOST_REQUIRE_PASSWORD", help="Ask even on the Unix socket.")
@click.option("--trust-proxy", multiple=True, metavar="CIDR", help="Believe X-Forwarded-For from these networks.")
@click.option(
    "--trust-loopback",
    is_flag=True,
    help="Let TCP clients on loopback in without credentials (unsafe on shared hosts).",
)
@click.option("--insecure", is_flag=True, help="Allow a non-loopback admin API with no user and no token.")
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Serve HTTPS with this certificate.",
)
@click.option(
    "--tls-key", type=click.Path(path_type=Path, exists=True, dir_okay=False), help="The certificate's private key."
)
@click.option(
    "--https-port",
    type=click.IntRange(0, 65535),
    envvar="ROOST_HTTPS_PORT",
    help="Serve custom domains over HTTPS on this port, with certificates obtained through ACME (the "
    "challenge is answered on --port, which must be reachable as port 80) [env ROOST_HTTPS_PORT].",
)
@click.option(
    "--acme-directory",
    default=LETS_ENCRYPT,
    show_default=True,
    envvar="ROOST_ACME_DIRECTORY",
    metavar="URL",
    help=f"The ACME CA's directory; Let's Encrypt's staging CA is {LETS_ENCRYPT_STAGING} [env ROOST_ACME_DIRECTORY].",
)
@click.option(
    "--acme-challenge",
    type=click.Choice(["http-01", "tls-alpn-01"]),
    default="http-01",
    show_default=True,
    envvar="ROOST_ACME_CHALLENGE",
    help="How the CA checks each domain: http-01 on --port (reached as port 80), or tls-alpn-01 on "
    "--https-port (reached as 443) where port 80 is closed [env ROOST_ACME_CHALLENGE].",
)
@click.option("--acme-email", envvar="ROOST_ACME_EMAIL", help="Contact address for the ACME account (expiry notices).")
@click.option(
    "--acme-ca-bundle",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    envvar="ROOST_ACME_CA_BUNDLE",
    help="Trust this CA file for the ACME server's own HTTPS (a private CA) [env ROOST_ACME_CA_BUNDLE].",
)
@click.option(
    "--api-domain",
    envvar="ROOST_API_DOMAIN",
    metavar="NAME",
    help="Serve the admin API over HTTPS on --api-port with an ACME certificate for NAME, obtained and "
    "renewed like a custom domain's (needs --https-port; not with --tls-cert). Until the first "
    "certificate arrives the API serves a temporary self-signed one [env ROOST_API_DOMAIN].",
)
@click.option(
    "--acme-renew-after",
    default=None,
    envvar="ROOST_ACME_RENEW_AFTER",
    hidden=True,
    help="Renew certificates at this age instead of 2/3 of their lifetime (for tests: pebble's last 5 years).",
)
@click.option(
    "--keep",
    default=10,
    show_default=True,
    envvar="ROOST_KEEP",
    type=click.IntRange(1),
    help="Deployments each app keeps on disk (besides those with traffic).",
)
@click.option(
    "--uv-cache",
    type=click.Path(path_type=Path),
    envvar="ROOST_UV_CACHE",
    help="uv's package cache [default: HOME/cache/uv].",
)
@click.option(
    "--scale-window", default="60s", show_default=True, envvar="ROOST_SCALE_WINDOW", help="Autoscaler's stable window."
)
@click.option(
    "--scale-panic-window",
    default="6s",
    show_default=True,
    envvar="ROOST_SCALE_PANIC_WINDOW",
    help="Autoscaler's panic window.",
)
@click.option(
    "--scale-down-delay",
    default="30s",
    show_default=True,
    envvar="ROOST_SCALE_DOWN_DELAY",
    help="Lower demand must last this long before instances are drained.",
)
@click.option(
    "--memory-budget",
    default="80%",
    show_default=True,
    envvar="ROOST_MEMORY_BUDGET",
    help="Instances start only while their memory limits add up to less than this: a share of RAM "
    "(80%), a size (16G), or 0 for no budget.",
)
@click.option(
    "--zygote-idle",
    default="30m",
    show_default=True,
    envvar="ROOST_ZYGOTE_IDLE",
    help="Evict a zygote nothing forked from for this long (the next start pays the import).",
)
@click.option(
    "--client-rate",
    default=1000.0,
    show_default=True,
    type=click.FloatRange(min=0),
    envvar="ROOST_CLIENT_RATE",
    help="Requests per second one client address may send to the edge (bursts of twice that); "
    "more get 429. 0 turns the limit off.",
)
@click.option(
    "--max-connections",
    default=DEFAULT_MAX_CONNECTIONS,
    show_default=True,
    type=int,
    metavar="N",
    envvar="ROOST_MAX_CONNECTIONS",
    help="Open client connections the edge accepts in all; more are closed at once [env ROOST_MAX_CONNECTIONS].",
)
@click.option(
    "--max-connections-per-client",
    default=DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    show_default=True,
    type=int,
    metavar="N",
    envvar="ROOST_MAX_CONNECTIONS_PER_CLIENT",
    help="Open connections one client address (IPv6: one /64) may hold at the edge; more are closed at once "
    "[env ROOST_MAX_CONNECTIONS_PER_CLIENT].",
)
@click.option(
    "--uid-range",
    default=f"{DEFAULT_UID_FIRST}-{DEFAULT_UID_LAST}",
    show_default=True,
    envvar="ROOST_UID_RANGE",
    metavar="FIRST-LAST",
    help="When run as root, each app runs under its own uid from this range (recorded in HOME/uids.json) "
    "[env ROOST_UID_RANGE].",
)
@click.option(
    "--instance-ports",
    default=f"{DEFAULT_INSTANCE_PORT_FIRST}-{DEFAULT_INSTANCE_PORT_LAST}",
    show_default=True,
    envvar="ROOST_INSTANCE_PORTS",
    metavar="FIRST-LAST",
    help="Every instance listens on a port of this range (keep it apart from the kernel's ephemeral ports and "
    "from other services); as root the firewall lets only the edge reach it [env ROOST_INSTANCE_PORTS].",
)
@click.option(
    "--firewall/--no-firewall",
    default=True,
    show_default=True,
    envvar="ROOST_FIREWALL",
    help="As root, an nftables table closes the instance ports to other apps and other hosts, and the admin "
    "API's TCP port to apps; --no-firewall leaves them open (see docs/limits.md) [env ROOST_FIREWALL].",
)
@click.option(
    "--build-allow",
    multiple=True,
    metavar="HOST[:PORT]",
    help="As root with the firewall, builds may also connect here (a hostname, an address or a CIDR; every "
    "port without :PORT); repeat it. Builds reach only DNS and the package index otherwise (see docs/limits.md).",
)
@click.option(
    "--build-limit",
    default="1G",
    show_default=True,
    envvar="ROOST_BUILD_LIMIT",
    metavar="SIZE",
    help="How much a pushed source archive may unpack to; a larger push fails to build [env ROOST_BUILD_LIMIT].",
)
@click.option(
    "--build-sandbox/--no-build-sandbox",
    default=True,
    show_default=True,
    envvar="ROOST_BUILD_SANDBOX",
    help="Run each build (uv, setup.py, bytecode) as its app's uid in a sandbox like its instances'; "
    "--no-build-sandbox runs builds as the daemon's user, unconfined, for benchmarks and debugging "
    "[env ROOST_BUILD_SANDBOX].",
)
@click.option(
    "--build-memory",
    default="2G",
    show_default=True,
    envvar="ROOST_BUILD_MEMORY",
    metavar="SIZE",
    help="Memory limit of each build's cgroup [env ROOST_BUILD_MEMORY].",
)
@click.option(
    "--build-cpu",
    default=None,
    show_default="all cores",
    type=click.FloatRange(min=0.01),
    envvar="ROOST_BUILD_CPU",
    metavar="CORES",
    help="CPU limit of each build, in cores [env ROOST_BUILD_CPU].",
)
@click.option(
    "--build-pids",
    default=512,
    show_default=True,
    type=click.IntRange(min=16),
    envvar="ROOST_BUILD_PIDS",
    help="Processes and threads each build may hold at once (stops a fork bomb) [env ROOST_BUILD_PIDS].",
)
@click.option(
    "--build-timeout",
    default="15m",
    show_default=True,
    envvar="ROOST_BUILD_TIMEOUT",
    help="How long a build (unpack, install, bytecode) may take before it is stopped [env ROOST_BUILD_TIMEOUT].",
)
@click.option(
    "--cron-speed",
    default=1.0,
    type=click.FloatRange(min=1.0),
    envvar="ROOST_CRON_SPEED",
    hidden=True,
    help="Run the cron clock this many times faster (for tests).",
)
@click.option(
    "--build-check-timeout",
    default="30s",
    show_default=True,
    envvar="ROOST_BUILD_CHECK_TIMEOUT",
    help="How long a new deployment has to answer on $PORT.",
)
@click.option(
    "--login-lockout",
    default="5m",
    show_default=True,
    envvar="ROOST_LOGIN_LOCKOUT",
    help="How long an address or user name stays locked after 8 failed passwords: its attempts are then "
    "checked one at a time, 5s apart (tokens are never throttled) [env ROOST_LOGIN_LOCKOUT].",
)
@click.option(
    "--cluster",
    is_flag=True,
    envvar="ROOST_CLUSTER",
    help="Also run the head of a cluster (preview): a token-protected Ray head that machines join with "
    "`roost node join`; needs `pip install 'roost[cluster]'` and --cluster-address (see docs/cluster.md) "
    "[env ROOST_CLUSTER].",
)
@click.option(
    "--cluster-address",
    envvar="ROOST_CLUSTER_ADDRESS",
    metavar="ADDRESS",
    help="With --cluster: this machine's address on the cluster's network, where Ray's head listens and "
    "nodes reach it [env ROOST_CLUSTER_ADDRESS].",
)
@click.option(
    "--cluster-port",
    type=click.IntRange(1, 65535),
    envvar="ROOST_CLUSTER_PORT",
    help="With --cluster: the Ray head's port, where nodes join; one of --cluster-ports [default: its first, "
    f"{CLUSTER_PORTS_DEFAULT.partition('-')[0]}] [env ROOST_CLUSTER_PORT].",
)
@click.option(
    "--cluster-ports",
    metavar="FIRST-LAST",
    envvar="ROOST_CLUSTER_PORTS",
    help="With --cluster: every port Ray opens on this machine lies in this block, which no app may connect to, "
    f"on any address; use the same block on every machine [default: {CLUSTER_PORTS_DEFAULT}] "
    "[env ROOST_CLUSTER_PORTS].",
)
@click.option(
    "--cluster-health-period",
    default="1s",
    show_default=True,
    envvar="ROOST_CLUSTER_HEALTH_PERIOD",
    help="With --cluster: how often the head checks each node [env ROOST_CLUSTER_HEALTH_PERIOD].",
)
@click.option(
    "--cluster-health-timeout",
    default="1s",
    show_default=True,
    envvar="ROOST_CLUSTER_HEALTH_TIMEOUT",
    help="With --cluster: how long a node has to answer a check [env ROOST_CLUSTER_HEALTH_TIMEOUT].",
)
@click.option(
    "--cluster-health-failures",
    default=3,
    show_default=True,
    type=click.IntRange(1, 100),
    envvar="ROOST_CLUSTER_HEALTH_FAILURES",
    help="With --cluster: checks missed in a row before a node is marked dead [env ROOST_CLUSTER_HEALTH_FAILURES].",
)
@click.option(
    "--cluster-region",
    default="main",
    show_default=True,
    envvar="ROOST_CLUSTER_REGION",
    help="With --cluster: the head's own region (the head runs instances too, within --memory-budget) "
    "[env ROOST_CLUSTER_REGION].",
)
@click.option(
    "--cluster-peer-port",
    default=8081,
    show_default=True,
    type=click.IntRange(1, 65535),
    envvar="ROOST_CLUSTER_PEER_PORT",
    help="With --cluster: the port on --cluster-address where other machines' edges forward requests for "
    "this machine's instances [env ROOST_CLUSTER_PEER_PORT].",
)
def serve(
    home: Path | None,
    host: str,
    port: int,
    api_host: str,
    api_port: int,
    domain: str,
    require_password: bool,
    trust_proxy: tuple[str, ...],
    build_check_timeout: str,
    trust_loopback: bool,
    insecure: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    https_port: int | None,
    acme_directory: str,
    acme_challenge: str,
    acme_email: str | None,
    acme_ca_bundle: Path | None,
    api_domain: str | None,
    acme_renew_after: str | None,
    keep: int,
    uv_cache: Path | None,
    scale_window: str,
    scale_panic_window: str,
    scale_down_delay: str,
    memory_budget: str,
    zygote_idle: str,
    client_rate: float,
    max_connections: int,
    max_connections_per_client: int,
    uid_range: str,
    instance_ports: str,
    firewall: bool,
    build_allow: tuple[str, ...],
    build_limit: str,
    build_sandbox: bool,
    build_memory: str,
    build_cpu: float | None,
    build_pids: int,
    build_timeout: str,
    cron_speed: float,
    login_lockout: str,
    cluster: bool,
    cluster_address: str | None,
    cluster_port: int | None,
    cluster_ports: str | None,
    cluster_health_period: str,
    cluster_health_timeout: str,
    cluster_health_failures: int,
    cluster_region: str,
    cluster_peer_port: int,
) -> None:
    """Run the Roost daemon in the foreground."""
    from roost import daemon  # the one place the daemon is imported

    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    for cidr in trust_proxy:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise click.BadParameter(f"{cidr!r} is not a network like 10.0.0.0/8", param_hint="--trust-proxy") from exc

    uid_first, uid_last = _uid_range(uid_range)
    port_first, port_last = _instance_ports(instance_ports)
    limit_connections, limit_per_client = _connections(max_connections, max_connections_per_client)
    limit_build = _build_limit(build_limit)
    logging.basicConfig(level=logging.INFO, format="roost: %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the cron runner's requests are events, not log lines
    settings = ServeSettings(
        home=(home or default_home()).expanduser().resolve(),
        edge_host=host,
        edge_port=port,
        api_host=api_host,
        api_port=api_port,
        domain=domain.lower().strip("."),
        require_password=require_password,
        trust_proxy=trust_proxy,
        timeout_build_check=_duration("--build-check-timeout", build_check_timeout),
        trust_loopback=trust_loopback,
        insecure=insecure,
        tls_cert=tls_cert.resolve() if tls_cert else None,
        tls_key=tls_key.resolve() if tls_key else None,
        https_port=https_port,
        acme_directory=acme_directory,
        acme_challenge=acme_challenge,
        acme_email=acme_email,
        acme_ca_bundle=acme_ca_bundle.resolve() if acme_ca_bundle else None,
        api_domain=api_domain,
        acme_renew_after=_duration("--acme-renew-after", acme_renew_after) if acme_renew_after else None,
        keep=keep,
        uv_cache=uv_cache.resolve() if uv_cache else None,
        scale_window=_duration("--scale-window", scale_window),
        scale_panic_window=_duration("--scale-panic-window", scale_panic_window),
        scale_down_delay=_duration("--scale-down-delay", scale_down_delay),
        cron_speed=cron_speed,
        memory_budget=parse_memory_budget(memory_budget),
        client_rate=client_rate,
        zygote_idle=_duration("--zygote-idle", zygote_idle),
        uid_first=uid_first,
        uid_last=uid_last,
        instance_port_first=port_first,
        instance_port_last=port_last,
        firewall=firewall,
        build_allow=build_allow,
        limit_build_unpacked=limit_build,
        build_sandbox=build_sandbox,
        build_memory=_build_memory(build_memory),
        build_cpu=DEFAULT_BUILD_CPU if build_cpu is None else build_cpu,
        build_pids=build_pids,
        timeout_build=_duration("--build-timeout", build_timeout),
        limit_connections=limit_connections,
        limit_connections_per_client=limit_per_client,
        login_lockout=_duration("--login-lockout", login_lockout),
        cluster_address=_cluster_address(cluster, cluster_address),
        cluster_port=cluster_port,
        cluster_ports=_cluster_ports(cluster, cluster_ports),
        cluster_health_period=_duration("--cluster-health-period", cluster_health_period),
        cluster_health_timeout=_duration("--cluster-health-timeout", cluster_health_timeout),
        cluster_health_failures=cluster_health_failures,
        cluster_region=cluster_region,
        cluster_peer_port=cluster_peer_port,
    )
    if trust_loopback:
        logging.getLogger("roost").warning(
            "--trust-loopback: any local process, including every app Roost runs, can use the admin API over TCP"
        )
    if not firewall:
        logging.getLogger("roost").warning(
            "--no-firewall: other apps can connect to every instance's port and to the admin API's TCP port, "
            "and other hosts too when an app binds 0.0.0.0"
        )
    daemon.run(settings, _announce)


def _cluster_address(cluster: bool, address: str | None) -> str | None:
    """--cluster's address: one of this machine's, never the wildcard (Ray's ports stay on the cluster's network)."""
    if not cluster:
        if address:
            raise UsageError("--cluster-address goes with --cluster", hint="add --cluster to run a cluster head")
        return None
    hint = "--cluster-address takes this machine's address on the network its nodes share, e.g. 10.0.0.1"
    if not address:
        raise UsageError("--cluster needs --cluster-address", hint=hint)
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"--cluster-address {address!r} is not an IP address", hint=hint) from None
    if parsed.is_unspecified:
        raise UsageError(f"--cluster-address {address} would offer Ray's ports on every network", hint=hint)
    return address


def _cluster_ports(cluster: bool, value: str | None) -> tuple[int, int] | None:
    """--cluster-ports: None for the cluster's default block (the cluster package checks the
    block's size and what it must stay apart from, when the daemon starts)."""
    if value is None:
        return None
    if not cluster:
        raise UsageError("--cluster-ports goes with --cluster", hint="add --cluster to run a cluster head")
    return parse_port_range("--cluster-ports", value, CLUSTER_PORTS_DEFAULT)


def parse_memory_budget(value: str) -> int:
    """'80%' of RAM, a size like '16G', or '0' for none."""
    text = value.strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 < share <= 100:
                raise ValueError("a share between 0% and 100%")
            return int(psutil.virtual_memory().total * share / 100)
        return parse_size(text) if text != "0" else 0
    except ValueError as exc:
        message = f"{value!r} is not a share of RAM or a size ({exc})"
        raise click.BadParameter(message, param_hint="--memory-budget") from exc


def _uid_range(value: str) -> tuple[int, int]:
    """'200000-265535' -> (200000, 265535): unprivileged uids no local account is likely to hold."""
    first_text, dash, last_text = value.strip().partition("-")
    hint = f"--uid-range takes FIRST-LAST between {UID_LOWEST} and {UID_HIGHEST}, for example 200000-265535"
    try:
        first, last = int(first_text), int(last_text)
    except ValueError:
        raise UsageError(f"--uid-range {value!r} is not a range of uids", hint=hint) from None
    if not dash or not UID_LOWEST <= first <= last <= UID_HIGHEST:
        raise UsageError(f"--uid-range {value!r} is not a usable range of uids", hint=hint)
    return first, last


def _instance_ports(value: str) -> tuple[int, int]:
    """'20000-29999' -> (20000, 29999): ports an app's uid may bind, which Roost alone hands out."""
    return parse_port_range("--instance-ports", value, "20000-29999")


def parse_port_range(flag: str, value: str, example: str) -> tuple[int, int]:
    """'20000-29999' -> (20000, 29999), unprivileged ports; UsageError naming `flag` otherwise."""
    first_text, dash, last_text = value.strip().partition("-")
    hint = f"{flag} takes FIRST-LAST between {PORT_LOWEST} and {PORT_HIGHEST}, for example {example}"
    try:
        first, last = int(first_text), int(last_text)
    except ValueError:
        raise UsageError(f"{flag} {value!r} is not a range of ports", hint=hint) from None
    if not dash or not PORT_LOWEST <= first <= last <= PORT_HIGHEST:
        raise UsageError(f"{flag} {value!r} is not a usable range of ports", hint=hint)
    return first, last


def _build_limit(value: str) -> int:
    """'1G' -> 1073741824: what a source archive may unpack to."""
    hint = "--build-limit takes a size of at least 1M, such as 512M or 2G"
    try:
        size = parse_size(value.strip())
    except ValueError as exc:
        raise UsageError(f"--build-limit {value!r} is not a size ({exc})", hint=hint) from exc
    if size < BUILD_LIMIT_LOWEST:
        raise UsageError(f"--build-limit {value!r} is too small to hold any app", hint=hint)
    return size


def _build_memory(value: str) -> int:
    """'2G' -> 2147483648: each build's memory limit."""
    hint = f"--build-memory takes a size of at least {BUILD_MEMORY_LOWEST // 1024**2}M, such as 2G"
    try:
        size = parse_size(value.strip())
    except ValueError as exc:
        raise UsageError(f"--build-memory {value!r} is not a size ({exc})", hint=hint) from exc
    if size < BUILD_MEMORY_LOWEST:
        raise UsageError(f"--build-memory {value!r} is too small for uv to run", hint=hint)
    return size


def _connections(total: int, per_client: int) -> tuple[int, int]:
    """The edge's connection limits: both positive, and one client never allowed more than all."""
    if total < 1 or per_client < 1:
        raise UsageError(
            "--max-connections and --max-connections-per-client must be at least 1",
            hint=f"the defaults are {DEFAULT_MAX_CONNECTIONS} and {DEFAULT_MAX_CONNECTIONS_PER_CLIENT}",
        )
    if per_client > total:
        raise UsageError(
            f"--max-connections-per-client {per_client} is more than --max-connections {total}",
            hint="one client can never hold more connections than the edge accepts in all; lower it or raise both",
        )
    return total, per_client
