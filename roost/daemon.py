"""`roost serve`: wiring, start and stop order, signals. Only `roost serve` imports this.

One asyncio loop (uvloop) runs the admin API, the edge, the runtime and the
builds. Signal handlers only set an event; the shutdown order is written
once, in `Daemon.shutdown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import uvicorn
import uvloop
from prometheus_client import CollectorRegistry

from roost.api import (
    Authenticator,
    AuthMiddleware,
    Dashboard,
    DoorSettings,
    EventFeed,
    SessionBook,
    ThrottlePolicy,
    check_exposure,
    create_api,
    parse_networks,
)
from roost.applog import LogBook
from roost.autoscale import Autoscaler
from roost.builder import Builder, Enclosure, home_id
from roost.certs import AcmeSettings, CertificateFiles, Issuer, RenewalPolicy
from roost.control import Control, Urls
from roost.control.domains import HttpsSetup, check_api_domain
from roost.control.recorder import Recorder
from roost.control.routing import build_route_table, deployment_apps, production_scale_specs
from roost.control.tls_sites import AdminTls, TlsSites
from roost.control.usage import app_memory
from roost.cron import CronRunner
from roost.edge import Edge, EdgeSettings, RouteTable, describe_build
from roost.errors import ConfigError
from roost.history import History
from roost.homelock import HomeLock
from roost.listeners import bind_tcp, bind_unix
from roost.metrics import RoostCollector, Tallies, make_registry, render
from roost.model import (
    AppName,
    CronJob,
    DeploymentId,
    Event,
    InstanceId,
)
from roost.passwords import PasswordFile
from roost.registry import Registry
from roost.requestlog import AnswerLog
from roost.runtime import LocalRuntime
from roost.runtime.ports import PortRange, check_outside
from roost.runtime.protocol import RUNNER_REQUIREMENTS, Runtime
from roost.runtime.sandbox.host_confinement import HostConfinement, build_jails, unjailed_build_procs
from roost.serve_settings import ServeSettings
from roost.store import Store

if TYPE_CHECKING:
    from roost.cluster import ClusterHead
    from roost.cluster.contract import Artifact, Demand
    from roost.cluster.head_node import HeadNode

log = logging.getLogger("roost.daemon")
GRACE_API_SHUTDOWN = 3
GRACE_EDGE_SHUTDOWN = 10.0
INTERNAL_SOCKET_NAME = "edge-internal.sock"  # the edge's door for Roost's own requests (cron)
HEAD_SHARE_OF_RAM = 0.8  # what a cluster's head offers instances without --memory-budget, as `roost node join`


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn on sockets we bound, without its own signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _address(sock: socket.socket, scheme: str = "http", reachable: bool = False) -> str:
    """`scheme://host:port` of a listener; `reachable`: a wildcard host as this machine's loopback."""
    host, port = sock.getsockname()[:2]
    if reachable and host in ("0.0.0.0", "::"):  # noqa: S104 - read, not bound
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"  # noqa: S104
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


class Daemon:
    """Owns every long-lived piece of one `roost serve` run."""

    def __init__(self, settings: ServeSettings, announce: Callable[[str], None]) -> None:
        self.settings = settings
        self.announce = announce
        self.stopping = asyncio.Event()
        self._lock = HomeLock(settings.lock_path)
        self._sockets: list[socket.socket] = []
        self._store: Store | None = None
        self._logs: LogBook | None = None
        self._runtime: LocalRuntime | None = None
        self._recorder: Recorder | None = None
        self._control: Control | None = None
        self._edge: Edge | None = None
        self._tls_sites: TlsSites | None = None
        self._admin_tls: AdminTls | None = None
        self._servers: list[tuple[_EmbeddedUvicorn, asyncio.Task[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._autoscaler: Autoscaler | None = None
        self._apps_of: dict[DeploymentId, str] = {}
        self.metrics_registry: CollectorRegistry | None = None
        self._tallies = Tallies()
        self._feed = EventFeed()
        self._history: History | None = None
        self._cluster: ClusterHead | None = None
        self._head_node: HeadNode | None = None
        self._peer_sock: socket.socket | None = None

    async def start(self) -> None:
        """Lock the home, bind every socket, open the store, recover, start serving."""
        s = self.settings
        api_domain = check_api_domain(s)
        s.home.mkdir(parents=True, exist_ok=True)
        s.home.chmod(0o700)  # owner-only; the sandbox opens a way (o+x, never o+r) to an app's own files
        self._lock.acquire()
        self._cluster = self._cluster_head()
        edge_sock = self._keep(bind_tcp(s.edge_host, s.edge_port, "edge router", "--port"))
        https_sock = None
        if s.https_port is not None:
            https_sock = self._keep(bind_tcp(s.edge_host, s.https_port, "HTTPS edge", "--https-port"))
        api_sock = self._keep(bind_tcp(s.api_host, s.api_port, "admin API", "--api-port"))
        unix_sock = self._keep(bind_unix(s.socket_path))
        internal_sock = self._keep(bind_unix(s.home / INTERNAL_SOCKET_NAME))
        if self._cluster is not None:
            where = self._cluster.settings.address
            self._peer_sock = self._keep(bind_tcp(where, s.cluster_peer_port, "peer door", "--cluster-peer-port"))
        store = self._store = await Store.open(s.db_path)
        check_exposure(s, await store.tokens.has_tokens())
        edge_port, api_port = edge_sock.getsockname()[1], api_sock.getsockname()[1]
        instance_ports = PortRange(s.instance_port_first, s.instance_port_last)
        check_outside(instance_ports, edge=edge_port, api=api_port)
        control = await self._wire(store, edge_port, api_port, instance_ports)
        await control.domains.claim_api_domain(api_domain)
        if api_domain is not None:
            files = control.domains.https.files
            self._admin_tls = await asyncio.to_thread(AdminTls, store, files, api_domain)
        await self._refresh_routes(None)
        await self._start_edge(edge_sock, https_sock, internal_sock)
        await self._start_cluster()  # before recovery: control deploys through the cluster
        await control.recover()
        self._background(self._autoscaler.run() if self._autoscaler else None, "autoscaler")
        self._background(control.cron.run() if control.cron else None, "cron")
        self._background(control.domains.run() if s.https_port is not None else None, "certificates")
        self._background(self._history.sample_forever(self._app_memory) if self._history else None, "history")
        await self._start_api(control, api_sock, unix_sock)
        edge_scheme = "https" if s.tls_cert and https_sock is None else "http"
        self.announce(f"admin API  {self._api_address(api_sock)}  (and unix socket {s.socket_path})")
        self.announce(f"edge       {_address(edge_sock, edge_scheme)}  (apps at {control.urls.production('<app>')})")
        if https_sock is not None:
            self.announce(f"https      {_address(https_sock, 'https')}  (certificates from {s.acme_directory})")
        if self._cluster is not None:
            self.announce(f"cluster    {self._cluster.describe()}")
        self.announce(f"edge build {describe_build()}")
        self.announce(f"home       {s.home}")
        self.announce("roost is ready")

    def _cluster_head(self) -> ClusterHead | None:
        """With --cluster: the cluster's head, checked before anything starts (roost.cluster is
        imported here alone, so a daemon without --cluster never loads it, nor Ray)."""
        s = self.settings
        if s.cluster_address is None:
            return None
        from roost.cluster import ClusterHead, HeadSettings, HealthChecks, check_region, ray_ports  # --cluster only

        health = HealthChecks(s.cluster_health_period, s.cluster_health_timeout, s.cluster_health_failures)
        instances = (s.instance_port_first, s.instance_port_last)
        listeners = {"--port": s.edge_port, "--https-port": s.https_port, "--api-port": s.api_port}
        listeners["--cluster-peer-port"] = s.cluster_peer_port
        ports = ray_ports(s.cluster_ports, s.cluster_port, {"--instance-ports": instances, **listeners})
        budget = s.memory_budget or int(psutil.virtual_memory().total * HEAD_SHARE_OF_RAM)
        region = check_region(s.cluster_region)
        head = ClusterHead(HeadSettings(s.home, s.cluster_address, ports, health, region, budget))
        head.check()
        return head

    async def _start_cluster(self) -> None:
        """Ray's head (kept beside the daemon until it stops), the driver, and the head as a node."""
        if self._head_node is not None:
            await self._head_node.start()

    def _api_address(self, api_sock: socket.socket) -> str:
        """The admin API's start-up line: its URL, and with --api-domain whose certificate it serves."""
        if self._admin_tls is None:
            return _address(api_sock, "https" if self.settings.tls_cert else "http")
        port = api_sock.getsockname()[1]
        url = f"https://{self._admin_tls.host}:{port}"
        if self._admin_tls.is_temporary():
            return f"{url}  (HTTPS with a temporary self-signed certificate until the CA's arrives)"
        return url

    def _confinement(self, api_port: int, instance_ports: PortRange) -> HostConfinement:
        """What instances and builds are confined with (one home for the rule: `roost node join` too)."""
        s = self.settings
        return HostConfinement(
            uid_first=s.uid_first,
            uid_last=s.uid_last,
            ports=instance_ports,
            firewall=s.firewall,
            guarded_ports=(api_port,),
            closed_ports=self._cluster.closed_to_apps() if self._cluster is not None else (),
            build_allow=s.build_allow,
            build_sandbox=s.build_sandbox,
            build_memory=s.build_memory,
            build_cpu=s.build_cpu,
            build_pids=s.build_pids,
        )

    async def _wire(self, store: Store, edge_port: int, api_port: int, instance_ports: PortRange) -> Control:
        """Build the runtime, edge, builder, control, autoscaler and cron runner, and connect them."""
        s = self.settings
        logs = self._logs = LogBook(s.home / "logs")
        recorder = self._recorder = Recorder(store, lambda: self._apps_of)
        tallies = self._tallies
        store.on_event = self._on_event
        runtime = self._runtime = LocalRuntime(
            s.home,
            logs,
            recorder,
            memory_budget=s.memory_budget,
            zygote_idle=s.zygote_idle,
            sandbox=self._confinement(api_port, instance_ports).sandbox_settings(os.environ),
        )
        await runtime.start()
        registry = Registry(s.home / "blobs")
        jails = build_jails(runtime.sandbox, self._confinement(api_port, instance_ports), s.timeout_build)
        procs = await asyncio.to_thread(unjailed_build_procs, runtime.sandbox, jails)  # after the runtime's sweep
        builder = Builder(
            s.home,
            RUNNER_REQUIREMENTS,
            cache_dir=s.uv_cache,
            limit_unpacked_bytes=s.limit_build_unpacked,
            enclosure=Enclosure(home_id(s.home), procs),
            jails=jails,
            timeout_build=s.timeout_build,
        )
        edge_settings = EdgeSettings(
            trust_proxy=s.trust_proxy,
            rate_per_client=s.client_rate,
            rate_burst=max(1, int(2 * s.client_rate)),
            limit_connections=s.limit_connections,
            limit_connections_per_client=s.limit_connections_per_client,
        )
        work: Runtime = runtime  # what control and the autoscaler drive
        served: Runtime = runtime  # where the public edge takes its slots
        if self._cluster is not None:
            head_node = self._head_node = self._head_side(runtime, builder, registry, edge_settings)
            work, served = head_node.runtime, head_node.view
            edge_settings = dataclasses.replace(edge_settings, node=head_node.node, region=head_node.region)
        work.subscribe(recorder)
        edge = self._edge = Edge(served, edge_settings)
        edge.on_recycle = self._spawn_stop
        edge.on_answer = AnswerLog(logs, lambda: self._apps_of)
        https, self._tls_sites = self._https_setup(edge, edge_port)
        urls = Urls(domain=s.domain, port=edge_port, scheme="https" if s.tls_cert else "http")
        control = self._control = Control(
            store,
            registry,
            builder,
            work,
            logs,
            s.home,
            urls,
            timeout_build_check=s.timeout_build_check,
            keep=s.keep,
            https=https,
        )
        control.on_change(self._refresh_routes)
        self._autoscaler = Autoscaler(work, self._demand, recorder.scaled, record_quota=recorder.quota_reached)
        control.cron = CronRunner(self._send_cron, recorder.event, speed=s.cron_speed)
        self.metrics_registry = make_registry(
            RoostCollector(lambda: edge.all_counters().values(), work.instances, lambda: self._apps_of, tallies)
        )
        self._history = History(lambda: edge.all_counters().values(), work.instances, lambda: self._apps_of)
        return control

    def _head_side(self, runtime: LocalRuntime, builder: Builder, registry: Registry, door: EdgeSettings) -> HeadNode:
        """With --cluster: the head's side of the cluster around this daemon's runtime, builder and registry."""
        from roost.cluster.cluster_settings import HEAD_ROLE  # --cluster only
        from roost.cluster.edgeview import node_label
        from roost.cluster.head_node import HeadNode
        from roost.cluster.nodedaemon import door_settings
        from roost.cluster.nodehost import BuiltPaths

        store, recorder, logs = self._store, self._recorder, self._logs
        region = self.settings.cluster_region
        assert store is not None and recorder is not None and logs is not None and self._cluster is not None  # noqa: S101
        assert self._peer_sock is not None  # noqa: S101 - bound in start

        async def digest_of(app: AppName, deployment: DeploymentId) -> str:
            return (await store.get_deployment(app, deployment)).digest

        async def find_build(artifact: Artifact) -> BuiltPaths | None:
            """The head built every deployment already (control did): its node uses that build."""
            found = await store.get_deployment(artifact.app, artifact.deployment)
            paths = BuiltPaths(Path(found.code_dir), Path(found.venv_dir))
            built = await asyncio.to_thread(lambda: paths.code_dir.is_dir() and paths.venv_dir.is_dir())
            return paths if built else None

        return HeadNode(
            self._cluster,
            runtime,
            recorder,
            builder=builder,
            registry=registry,
            logs=logs,
            digest_of=digest_of,
            find_build=find_build,
            peer_sock=self._peer_sock,
            door_settings=door_settings(dataclasses.replace(door, node=node_label(HEAD_ROLE, region), region=region)),
            demand=self._edge_demand,
        )

    def _edge_demand(self) -> dict[DeploymentId, Demand]:
        """Requests at this machine's public edge, by deployment: the head's part of the cluster's demand."""
        if self._edge is None:
            return {}
        from roost.cluster.contract import Demand  # --cluster only

        return {d: Demand(c.in_flight + c.queued, c.last_request_at) for d, c in self._edge.all_counters().items()}

    async def _start_edge(
        self, edge_sock: socket.socket, https_sock: socket.socket | None, internal_sock: socket.socket
    ) -> None:
        """Plain HTTP on --port (HTTPS there with --tls-cert and no --https-port, as before), the
        HTTPS door on --https-port, and the internal door."""
        assert self._edge is not None  # noqa: S101 - wired before
        if https_sock is None and self.settings.tls_cert is not None:
            await self._edge.start_https(edge_sock)
        else:
            await self._edge.start(edge_sock)
        if https_sock is not None:
            await self._edge.start_https(https_sock)
        await self._edge.start_internal(internal_sock)

    def _https_setup(self, edge: Edge, edge_port: int) -> tuple[HttpsSetup, TlsSites]:
        """Custom domains' certificates: ACME with --https-port, supplied files wherever HTTPS is served."""
        s = self.settings
        files = CertificateFiles(s.home / "certs")
        default = (s.tls_cert, s.tls_key) if s.tls_cert is not None and s.tls_key is not None else None
        https_port = s.https_port if s.https_port is not None else (edge_port if default else None)
        issuer = None
        if s.https_port is not None:
            issuer = Issuer(AcmeSettings(s.acme_directory, s.acme_email, s.acme_ca_bundle, s.acme_challenge), files)
        setup = HttpsSetup(
            files,
            issuer,
            edge.challenges,
            RenewalPolicy(renew_after=s.acme_renew_after),
            serving=https_port is not None,
        )
        assert self._store is not None  # noqa: S101 - opened before wiring
        return setup, TlsSites(self._store, files, https_port if s.https_port is not None else None, default)

    def _on_event(self, event: Event) -> None:
        """The store's hook: each stored event feeds the metrics' tallies and the dashboard's streams."""
        self._tallies.event(event.app or "", event.kind, event.data)
        self._feed.publish(event)

    async def _app_memory(self) -> dict[str, int]:
        instances = self._runtime.instances() if self._runtime is not None else []
        return await asyncio.to_thread(app_memory, instances)

    def _background(self, work: Coroutine[Any, Any, None] | None, name: str) -> None:
        if work is None:
            return
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.append(task)

    def _demand(self, deployment: DeploymentId) -> tuple[int, float | None]:
        if self._edge is None:
            return 0, None
        if self._head_node is not None:  # every machine's edge, as each last reported (this one's too)
            demand = self._head_node.runtime.demand(deployment)
            return demand.waiting, demand.last_request_at
        counters = self._edge.counters(deployment)
        return counters.in_flight + counters.queued, counters.last_request_at

    async def _send_cron(self, app: str, job: CronJob) -> tuple[int, str]:
        if self._edge is None:
            return 0, ""
        return await self._edge.internal_request(AppName(app), "POST", job.path, {"x-roost-cron": job.name})

    async def _start_api(self, control: Control, tcp: socket.socket, unix: socket.socket) -> None:
        """Two doors onto one API: TCP (always authenticated) and the owner-only Unix socket."""
        s = self.settings
        registry = self.metrics_registry
        policy = ThrottlePolicy(lockout_seconds=s.login_lockout)
        auth = Authenticator(PasswordFile(s.passwords_path), control.token_info, policy)
        sessions = SessionBook()
        url = _address(tcp, "https" if s.tls_cert else "http", reachable=True)
        if self._admin_tls is not None:
            url = f"https://{self._admin_tls.host}:{tcp.getsockname()[1]}"
        dashboard = Dashboard(auth, sessions, self._history, self._feed, url)
        api = create_api(
            control,
            lambda: render(registry) if registry is not None else b"",
            dashboard,
            cluster=self._head_node or self._cluster,
        )
        proxies = parse_networks(s.trust_proxy)
        doors = [
            (tcp, DoorSettings(False, s.require_password, s.trust_loopback, proxies), s.tls_cert, s.tls_key),
            (unix, DoorSettings(True, s.require_password), None, None),
        ]
        for sock, door, cert, key in doors:
            tls = self._admin_tls.context if self._admin_tls is not None and sock is tcp else None
            config = uvicorn.Config(
                AuthMiddleware(api, auth, door, control.audit.record, sessions),
                log_level="warning",
                access_log=False,
                lifespan="off",
                proxy_headers=False,
                server_header=False,
                timeout_graceful_shutdown=GRACE_API_SHUTDOWN,
                ssl_certfile=str(cert) if cert else None,
                ssl_keyfile=str(key) if key else None,
            )
            if tls is not None:  # uvicorn takes files; the API's own name needs a context that follows renewals
                config.load()
                config.ssl = tls
            server = _EmbeddedUvicorn(config)
            task = asyncio.create_task(server.serve(sockets=[sock]))
            self._servers.append((server, task))
            while not server.started:
                if task.done():
                    await task
                    raise ConfigError("the admin API stopped while starting", hint="see the lines above")
                await asyncio.sleep(0.01)

    def _spawn_stop(self, instance: InstanceId, reason: str) -> None:
        """The edge's recycle hook: an instance overran its request timeout."""
        if self._control is not None and self._runtime is not None:
            self._control.run_in_background(self._runtime.stop_instance(instance, reason), name=f"recycle {instance}")

    async def _refresh_routes(self, _: AppName | None) -> None:
        """Hand the edge a new routing snapshot, and the autoscaler its deployments."""
        if self._store is None or self._edge is None:
            return
        table: RouteTable = await build_route_table(self._store, self.settings.domain)
        self._edge.update_routes(table)
        if self._head_node is not None:
            self._head_node.update_routes(table)
        if self._tls_sites is not None:
            self._edge.update_tls(await self._tls_sites.table())
        if self._admin_tls is not None:
            await self._admin_tls.refresh()
        self._apps_of = await deployment_apps(self._store)
        if self._autoscaler is not None:
            self._autoscaler.set_specs(await production_scale_specs(self._store, self.settings))
            self._autoscaler.set_quotas(await self._store.quotas.list_quotas())

    def _keep(self, sock: socket.socket) -> socket.socket:
        self._sockets.append(sock)
        return sock

    async def shutdown(self) -> None:
        """The one shutdown order: stop admitting, drain, stop instances, stop the API, flush, unlock."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_serving()
        await self._stop_api()
        if self._recorder is not None:
            await self._recorder.flush()
        if self._store is not None:
            await self._store.close()
        if self._logs is not None:
            self._logs.close()
        for sock in self._sockets:
            sock.close()
        if self._sockets:
            for path in (self.settings.socket_path, self.settings.home / INTERNAL_SOCKET_NAME):
                path.unlink(missing_ok=True)
        self._lock.release()

    async def _stop_serving(self) -> None:
        """Cron first (no new work), then the edge drains, then builds and instances stop."""
        if self._control is not None and self._control.cron is not None:
            await self._control.cron.close()
        if self._edge is not None:
            await self._edge.close(GRACE_EDGE_SHUTDOWN)
        if self._control is not None:
            await self._control.cancel_background()
        if self._head_node is not None:  # nodes keep serving what they run
            await self._head_node.close()
        if self._runtime is not None:
            await self._runtime.close()

    async def _stop_api(self) -> None:
        for server, _ in self._servers:
            server.should_exit = True
        for _, task in self._servers:
            await task


async def _serve(settings: ServeSettings, announce: Callable[[str], None]) -> None:
    daemon = Daemon(settings, announce)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, daemon.stopping.set)
    try:
        await daemon.start()
        await daemon.stopping.wait()
        announce("stopping")
    finally:
        await daemon.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    announce("stopped")


def run(settings: ServeSettings, announce: Callable[[str], None]) -> None:
    """Run the daemon until SIGINT or SIGTERM. Raises RoostError on a failed start."""
    uvloop.run(_serve(settings, announce))
