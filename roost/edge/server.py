"""The edge router: serve a listening socket, swap routing snapshots, count, and close gracefully.

Never spawns processes and never reads the store: the runtime hands out slots
(through the activator), the daemon hands over `RouteTable` snapshots.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from roost.clientaddr import parse_networks
from roost.edge.activator import Activator
from roost.edge.answers import Answer
from roost.edge.client import ClientConnection
from roost.edge.context import EdgeContext
from roost.edge.counters import EdgeCounters, Tally
from roost.edge.edge_settings import EdgeSettings
from roost.edge.handshake import TlsDoor
from roost.edge.request import PIN_HEADER
from roost.edge.routes import AppRoute, RouteTable
from roost.edge.tls import Challenges, TlsTable, server_context, sni_callback
from roost.errors import ConfigError
from roost.model import AppName, DeploymentId, InstanceId, InstanceState, Traffic
from roost.runtime.protocol import InstanceInfo, Runtime

log = logging.getLogger("roost.edge")
PRUNE_EVERY = 60.0


class Edge:
    """The HTTP/1.1 reverse proxy in front of every app; also the runtime's listener.

    Example (the daemon)::

        edge = Edge(runtime, EdgeSettings(trust_proxy=("10.0.0.0/8",)))   # subscribes to the runtime
        edge.on_recycle = lambda instance, reason: tasks.start(runtime.stop_instance(instance, reason))
        edge.update_routes(table)          # again on every change; open connections keep working
        await edge.start(sock)             # a listening socket the daemon bound
        ...
        await edge.close(grace=10.0)       # stop accepting, finish in-flight answers, then cut

    Raises ConfigError for a bad `trust_proxy` network, or a `node` that is not printable ASCII.
    """

    def __init__(self, runtime: Runtime, settings: EdgeSettings | None = None, *, rng: random.Random | None = None):
        self.settings = settings = settings or EdgeSettings()
        try:
            networks = parse_networks(settings.trust_proxy)
        except ValueError as exc:
            raise ConfigError(str(exc), hint="pass --trust-proxy a CIDR such as 10.0.0.0/8") from exc
        if not (settings.node.isascii() and settings.node.isprintable()):
            raise ConfigError(f"{settings.node!r} cannot be an X-Roost-Node header", hint="use printable ASCII")
        self._activator = Activator(runtime, settings.limit_queue, settings.timeout_activate, settings.region)
        self._ctx = EdgeContext(settings, self._activator, networks, rng or random.Random())  # noqa: S311 - a traffic split, not a secret
        self._server: asyncio.AbstractServer | None = None
        self._internal: asyncio.AbstractServer | None = None
        self._https: asyncio.AbstractServer | None = None
        self._internal_path: Path | None = None
        self._prune_timer: asyncio.TimerHandle | None = None
        runtime.subscribe(self)

    @property
    def on_recycle(self) -> Callable[[InstanceId, str], None] | None:
        """Called with (instance, reason) when an instance overran a request's time limit and grace."""
        return self._ctx.on_recycle

    @on_recycle.setter
    def on_recycle(self, hook: Callable[[InstanceId, str], None] | None) -> None:
        self._ctx.on_recycle = hook

    @property
    def on_answer(self) -> Callable[[Answer], None] | None:
        """Called with every answer given for a deployment (the request log); it must not block."""
        return self._ctx.on_answer

    @on_answer.setter
    def on_answer(self, hook: Callable[[Answer], None] | None) -> None:
        self._ctx.on_answer = hook

    # -- RuntimeListener -------------------------------------------------------------------

    def instance_changed(self, info: InstanceInfo) -> None:
        self._activator.instance_changed(info.id, info.state is InstanceState.READY)
        if info.state is not InstanceState.READY:
            self._ctx.pool.close_address(info.host, info.port)
        if info.state is InstanceState.CRASHED:
            self._ctx.instance_ended(info.id, info.reason)

    def capacity_changed(self, deployment: DeploymentId) -> None:
        self._activator.capacity_changed(deployment)

    def start_failed(self, deployment: DeploymentId, reason: str, retry_after: int | None = None) -> None:
        log.warning("deployment %s: an instance could not start (%s); failing its waiting requests", deployment, reason)
        self._activator.start_failed(deployment, reason, retry_after)

    # -- routes and counters -----------------------------------------------------------------

    @property
    def routes(self) -> RouteTable:
        return self._ctx.routes

    def update_routes(self, table: RouteTable) -> None:
        """Swap in a new routing snapshot: the next request on any connection sees it."""
        self._ctx.set_routes(table)

    @property
    def tls(self) -> TlsTable:
        return self._ctx.tls

    def update_tls(self, table: TlsTable) -> None:
        """Swap in new certificates, redirects and HSTS: the next handshake and request see them."""
        self._ctx.tls = table

    @property
    def challenges(self) -> Challenges:
        """Where an ACME issuer puts up HTTP-01 answers (served on the plain HTTP door)."""
        return self._ctx.challenges

    def counters(self, deployment: DeploymentId) -> EdgeCounters:
        """A frozen copy of one deployment's counters (zeros if it never had a request)."""
        tally = self._ctx.tallies.get(deployment) or Tally(deployment)
        return tally.snapshot(queued=self._activator.waiting(deployment))

    def all_counters(self) -> dict[DeploymentId, EdgeCounters]:
        return {deployment: self.counters(deployment) for deployment in list(self._ctx.tallies)}

    @property
    def connections(self) -> int:
        """Open client connections."""
        return len(self._ctx.connections)

    # -- life cycle ------------------------------------------------------------------------

    async def start(self, sock: socket.socket) -> None:
        """Serve plain HTTP on `sock` (already bound and listening); returns once accepting.
        HTTPS goes through `start_https`, the one door with the TLS policy and handshake limits."""
        loop = asyncio.get_running_loop()
        ctx = self._ctx
        ctx.pool.loop = loop  # kept: asyncio.get_running_loop() costs a getpid() syscall on 3.11
        self._server = await loop.create_server(lambda: ClientConnection(ctx, loop), sock=sock)
        self._prune_timer = loop.call_later(PRUNE_EVERY, self._prune)

    async def start_https(self, sock: socket.socket) -> None:
        """Serve HTTPS on `sock`: the certificate is chosen by SNI from the current `TlsTable`
        (`update_tls`). Each connection counts in the caps from accept and has
        `timeout_handshake` to finish its handshake."""
        loop = asyncio.get_running_loop()
        ctx = self._ctx
        ctx.pool.loop = loop
        listening = server_context()
        listening.sni_callback = sni_callback(lambda: ctx.tls, ctx.challenges)
        self._https = await loop.create_server(lambda: TlsDoor(ctx, loop, listening), sock=sock)
        if self._prune_timer is None:
            self._prune_timer = loop.call_later(PRUNE_EVERY, self._prune)

    async def start_internal(self, sock: socket.socket) -> None:
        """Serve Roost's own door on `sock` (an owner-only Unix socket): requests through it
        keep X-Roost-Cron and may reach private paths. Everything else is the normal path."""
        loop = asyncio.get_running_loop()
        ctx = self._ctx
        self._internal = await loop.create_unix_server(lambda: ClientConnection(ctx, loop, internal=True), sock=sock)
        self._internal_path = Path(sock.getsockname())

    async def internal_request(
        self, app: AppName, method: str, path: str, headers: Mapping[str, str]
    ) -> tuple[int, str]:
        """Send one request to `app`'s production deployment (the heaviest in its traffic, never
        the other side of an A/B split) through the internal door and return its status and
        X-Roost-Start (it wakes a sleeping function like any request). Raises httpx.HTTPError
        when the request cannot be made."""
        if self._internal_path is None:
            raise RuntimeError("start_internal() was not called")
        route = self._ctx.routes.apps.get(app)
        timeout = self.settings.timeout_activate + (route.timeout_request if route is not None else 60.0) + 5.0
        sent = dict(headers)
        production = self._production(route)
        if production is not None:
            sent[PIN_HEADER.decode()] = production
        transport = httpx.AsyncHTTPTransport(uds=str(self._internal_path))
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
            host = f"{app}.{self._ctx.routes.domain}"
            response = await client.request(method, f"http://{host}{path}", headers=sent)
            return response.status_code, response.headers.get("x-roost-start", "")

    @staticmethod
    def _production(route: AppRoute | None) -> DeploymentId | None:
        """Production as everyone picks it (model.Traffic), as the cron schedule does."""
        return Traffic.of_pairs(route.traffic).production if route is not None else None

    async def close(self, grace: float) -> None:
        """Stop accepting; answer waiting requests 503; let in-flight answers finish for up to
        `grace` seconds; then cut what is left and close the upstream pool."""
        ctx = self._ctx
        ctx.closing = True
        if self._prune_timer is not None:
            self._prune_timer.cancel()
            self._prune_timer = None
        for server in (self._server, self._https, self._internal):
            if server is not None:
                server.close()
        self._activator.close()
        ctx.drained = asyncio.Event()
        for conn in list(ctx.connections):
            conn.shutdown()
        if ctx.connections:
            try:
                async with asyncio.timeout(grace):
                    await ctx.drained.wait()
            except TimeoutError:
                log.warning("edge: %d connections still open after %.1fs; closing them", len(ctx.connections), grace)
        for conn in list(ctx.connections):
            conn.abort()
        await asyncio.sleep(0)  # let the aborted connections report, so their slots go back
        await ctx.pool.close()
        for server in (self._server, self._https, self._internal):
            if server is not None:
                await server.wait_closed()
        self._server = self._https = self._internal = None

    def _prune(self) -> None:
        self._ctx.guard.prune(time.monotonic())
        self._prune_timer = asyncio.get_running_loop().call_later(PRUNE_EVERY, self._prune)
