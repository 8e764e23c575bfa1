"""What every client connection and exchange of one Edge shares: settings, pool,
activator, guard, counters and the current routing snapshot.

Holds state only; the protocol code lives in client.py and exchange.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from roost.edge.activator import Activator
from roost.edge.counters import Tally
from roost.edge.guard import ClientGuard, Network
from roost.edge.routes import HostMatch, RouteTable, match_host
from roost.edge.settings import EdgeSettings
from roost.edge.upstream import UpstreamPool
from roost.edge.wire import Clock
from roost.model import DeploymentId, InstanceId

if TYPE_CHECKING:
    from roost.edge.client import ClientConnection

log = logging.getLogger("roost.edge")
LIMIT_HOST_CACHE = 4096
NOT_SEEN = "not-seen"


class Context:
    """Shared by the connections of one Edge; one event loop owns it all."""

    def __init__(
        self,
        settings: EdgeSettings,
        activator: Activator,
        networks: tuple[Network, ...],
        rng: random.Random,
    ) -> None:
        self.settings = settings
        self.activator = activator
        self.networks = networks
        self.rng = rng
        self.pool = UpstreamPool(settings.limit_upstream_idle, settings.timeout_upstream_idle, settings.timeout_connect)
        self.guard = ClientGuard(
            settings.limit_connections,
            settings.limit_connections_per_client,
            settings.rate_per_client,
            settings.rate_burst,
        )
        self.clock = Clock()
        self.server = settings.server_header.encode("latin-1")
        self.server_line = b"Server: %s\r\n" % self.server if self.server else b""
        self.routes = RouteTable(domain="localhost")
        self.tallies: dict[DeploymentId, Tally] = {}
        self.connections: set[ClientConnection] = set()
        self.closing = False
        self.drained: asyncio.Event | None = None  # set once closing and the last connection is gone
        self.on_recycle: Callable[[InstanceId, str], None] | None = None
        self.unrouted = Tally(DeploymentId(""))  # answers given before a deployment was known (404, 429)
        self._hosts: dict[bytes, HostMatch] = {}
        self._ids = random.Random(os.urandom(16))  # noqa: S311 - request ids are not secrets

    def set_routes(self, table: RouteTable) -> None:
        self.routes = table
        self._hosts = {}

    def match(self, host: bytes) -> HostMatch:
        """`match_host` on the current table, remembered per Host value until the next table."""
        matched = self._hosts.get(host, NOT_SEEN)
        if matched is NOT_SEEN:
            if len(self._hosts) >= LIMIT_HOST_CACHE:
                self._hosts = {}
            matched = self._hosts[host] = match_host(self.routes, host.decode("latin-1"))
        return matched

    def connection_closed(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)
        if self.drained is not None and not self.connections:
            self.drained.set()

    def tally(self, deployment: DeploymentId) -> Tally:
        tally = self.tallies.get(deployment)
        if tally is None:
            tally = self.tallies[deployment] = Tally(deployment)
        return tally

    def new_request_id(self) -> bytes:
        """16 hex digits. Unique, not secret (the client sees it): a fast generator seeded from the OS."""
        return b"%016x" % self._ids.getrandbits(64)

    def recycle(self, instance: InstanceId, reason: str) -> None:
        if self.on_recycle is not None:
            try:
                self.on_recycle(instance, reason)
            except Exception:
                log.exception("recycling instance %s failed", instance)
