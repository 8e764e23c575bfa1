"""What every client connection and exchange of one Edge shares: settings, pool,
activator, guard, counters and the current routing snapshot.

Holds state only; the protocol code lives in client.py and exchange.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections.abc import Callable
from typing import Protocol

from roost.clientaddr import Network
from roost.edge.activator import Activator
from roost.edge.answers import Answer
from roost.edge.counters import Tally
from roost.edge.edge_settings import EdgeSettings
from roost.edge.guard import ClientGuard
from roost.edge.routes import HostMatch, RouteTable, match_host
from roost.edge.tls import Challenges, TlsTable
from roost.edge.upstream import UpstreamPool
from roost.edge.wire import Clock
from roost.model import DeploymentId, InstanceId

log = logging.getLogger("roost.edge")
LIMIT_HOST_CACHE = 4096
NOT_SEEN = "not-seen"
LIMIT_ENDS = 256  # crash reasons of recent instances, for 502 pages
WAIT_END = 1.0  # a broken connection is noticed before the runtime reaps the instance: wait this long for why
# The one crash reason a 502 page may name. The runtime's reason starts with it (after a crash-loop
# prefix) when the instance was killed for memory; the app's own output only ever follows it, so an
# anchored match cannot be forged by what the app prints.
MEMORY_REASON = re.compile(r"(?:crash-looping \(\d+ crashes in a row\): )?(exceeded its memory limit of [0-9.e+]+ MB)")


class Connection(Protocol):
    """An open client connection, as the Edge sees it when closing (client.py's `ClientConnection`)."""

    def shutdown(self) -> None:
        """Close when idle: after the answer under way, if any."""

    def abort(self) -> None:
        """Close now."""


def public_reason(reason: str) -> str:
    """What a 502 page may say about why an instance ended: the memory sentence, else nothing.

    >>> public_reason("exceeded its memory limit of 128 MB (killed by SIGKILL): MemoryError | ...")
    'exceeded its memory limit of 128 MB'
    >>> public_reason("exited with status 1: Traceback ... /srv/app/secret.py")
    ''
    """
    found = MEMORY_REASON.match(reason)
    return found.group(1) if found is not None else ""


class EdgeContext:
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
        # on answers from an instance of this machine (a peer edge's answers carry its own)
        self.node_line = b"X-Roost-Node: %s\r\n" % settings.node.encode("latin-1") if settings.node else b""
        self.routes = RouteTable(domain="localhost")
        self.tls = TlsTable()  # the HTTPS door's certificates by name, redirects and HSTS
        self.challenges = Challenges()  # HTTP-01 answers for an ACME CA
        self.tallies: dict[DeploymentId, Tally] = {}
        self.connections: set[Connection] = set()
        self.closing = False
        self.drained: asyncio.Event | None = None  # set once closing and the last connection is gone
        self.on_recycle: Callable[[InstanceId, str], None] | None = None
        self.on_answer: Callable[[Answer], None] | None = None  # every answer of a deployment, when set
        self.unrouted = Tally(DeploymentId(""))  # answers given before a deployment was known (404, 429)
        self._hosts: dict[bytes, HostMatch] = {}
        self._ids = random.Random(os.urandom(16))  # noqa: S311 - request ids are not secrets
        self._ends: dict[InstanceId, str] = {}
        self._end_waiters: dict[InstanceId, list[Callable[[str], None]]] = {}

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

    def connection_closed(self, conn: Connection) -> None:
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

    def instance_ended(self, instance: InstanceId, reason: str) -> None:
        """An instance crashed (the runtime says why): remember what a page may say of it, and tell
        the 502s waiting for it. The full reason (it holds the app's last output lines) is never kept."""
        reason = public_reason(reason)
        self._ends[instance] = reason
        if len(self._ends) > LIMIT_ENDS:
            del self._ends[next(iter(self._ends))]
        for waiter in self._end_waiters.pop(instance, []):
            waiter(reason)

    def explain_end(self, instance: InstanceId, then: Callable[[str], None]) -> None:
        """Call `then` with the public part of why `instance` ended (see `public_reason`; "" if
        there is none or the runtime does not say within WAIT_END)."""
        known = self._ends.get(instance)
        if known is not None:
            then(known)
            return
        waiters = self._end_waiters.setdefault(instance, [])
        called = False

        def once(reason: str) -> None:
            nonlocal called
            if not called:
                called = True
                then(reason)

        def expire() -> None:
            pending = self._end_waiters.get(instance)
            if pending is not None and once in pending:
                pending.remove(once)
                if not pending:
                    del self._end_waiters[instance]
            once("")

        waiters.append(once)
        asyncio.get_running_loop().call_later(WAIT_END, expire)
