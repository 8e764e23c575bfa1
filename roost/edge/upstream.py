"""Connections to instances: one protocol per TCP connection, pooled keep-alive per host:port.

An `UpstreamConnection` parses responses (httptools, strict) and hands the
pieces to its `ResponseSink` (the exchange that owns it); it never decides
what the client sees. Both contracts it calls back through are written here.
The pool keeps idle connections with a `call_later` expiry and closes them
when their instance stops being ready.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

if TYPE_CHECKING:
    from roost.edge.tunnel import Tunnel

log = logging.getLogger("roost.edge")

Key = tuple[str, int]
# Response headers that are hop-by-hop or rebuilt by the edge (framing, Server, Upgrade).
LENGTH, CHUNKED, DROPPED, SERVER, UPGRADE, CONNECTION = 1, 2, 3, 4, 5, 6
RESPONSE_SPECIAL: dict[bytes, int] = {
    b"content-length": LENGTH,
    b"transfer-encoding": CHUNKED,
    b"connection": CONNECTION,
    b"keep-alive": DROPPED,
    b"te": DROPPED,
    b"trailer": DROPPED,
    b"proxy-connection": DROPPED,
    b"proxy-authenticate": DROPPED,
    b"x-request-id": DROPPED,  # the edge sets its own
    b"x-roost-start": DROPPED,
    b"x-roost-node": DROPPED,  # an app's own must not pass as the edge's
    b"server": SERVER,
    b"upgrade": UPGRADE,
}
# From a peer node's edge: its X-Roost-Start and X-Roost-Node describe the instance that served.
PEER_SPECIAL: dict[bytes, int] = {
    name: kind for name, kind in RESPONSE_SPECIAL.items() if name not in (b"x-roost-start", b"x-roost-node")
}
# From a peer node's edge, for a request that waited here for the instance's start: the start is ours to say.
PEER_STARTED_SPECIAL: dict[bytes, int] = {
    name: kind for name, kind in RESPONSE_SPECIAL.items() if name != b"x-roost-node"
}


class ResponseSink(Protocol):
    """Who an `UpstreamConnection` hands one response to (exchange.py's `Exchange`).

    The connection owns the socket and the parsing; the sink decides what the client sees.
    Calls come in order: `response_informational`* then `response_head`, `response_body`*,
    `response_end`; or `upgrade_accepted`; or `upstream_failed` at any point. `relayed`
    follows each read that did not end the response. After `response_end` or
    `upstream_failed` the sink gives the connection back (pool) or drops it.
    """

    def response_informational(self, status: int) -> None:
        """A 1xx head; the filtered headers are in the connection's `parts`."""

    def response_head(self, status: int, no_body: bool) -> None:
        """The final head: headers in `parts`, the length (if any) in `length`."""

    def response_body(self, data: bytes) -> None:
        """A piece of the body, unframed."""

    def response_end(self) -> None:
        """The response is complete."""

    def relayed(self) -> None:
        """One read from the app was handled and the response goes on: flush, move its timer."""

    def upgrade_accepted(self, rest: bytes) -> None:
        """The app switched protocols (101); `rest` is what it sent after the head."""

    def upstream_failed(self, why: str) -> None:
        """The connection broke or the response was malformed; the connection is unusable."""

    def upstream_full(self, full: bool) -> None:
        """Our writes to the app are backed up (True) or drained again (False)."""


class Connecting(Protocol):
    """Who `UpstreamPool.connect` reports to: exactly one of the two, once."""

    def connected(self, conn: UpstreamConnection) -> None:
        """A new connection, now the caller's: begin it, or give it back to the pool."""

    def connect_failed(self, why: str) -> None:
        """No connection (refused, unreachable, or not within timeout_connect)."""


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to an instance, owned by one exchange at a time."""

    def __init__(self, pool: UpstreamPool, key: Key) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.exchange: ResponseSink | None = None
        self.tunnel: Tunnel | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.idle_since = 0.0
        self.is_idle = False
        self.reusable = False
        self._parser = HttpResponseParser(self)
        self._stale_parser = False  # a HEAD answer ended at its head; llhttp still expects a body
        self._reading_paused = False
        self._head_only = False
        self._ended = False
        self._until_close = False
        self.received = False  # any byte of the current response
        self.reused = False  # it sat idle in the pool: the app may have closed it meanwhile
        self.parts: list[bytes] = []
        self.length: int | None = None
        self.chunked = False
        self.upgrade: bytes | None = None
        self.connection: bytes | None = None
        self.keep_server = True
        self.special = RESPONSE_SPECIAL

    def begin(
        self, exchange: ResponseSink, head_only: bool, keep_server: bool, paused: bool, peer: dict[bytes, int] | None
    ) -> None:
        """Take the connection for one exchange's request; `paused`: its client cannot take more yet;
        `peer`: it goes to a peer node's edge, and these are the answer headers this edge handles
        itself (PEER_SPECIAL: the peer's X-Roost-* pass; PEER_STARTED_SPECIAL: its X-Roost-Node)."""
        if self._stale_parser:
            self._parser = HttpResponseParser(self)
            self._stale_parser = False
        self.exchange = exchange
        self.special = RESPONSE_SPECIAL if peer is None else peer
        if paused:
            self.pause_reading()
        self._head_only = head_only
        self.keep_server = keep_server
        self.received = False
        self._ended = False
        self.reusable = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.reusable = True  # until an exchange's answer says otherwise

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_upstream(data)
            return
        exchange = self.exchange
        if exchange is None:
            self.close()  # bytes nobody asked for: the connection cannot be trusted again
            return
        self.received = True
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as exc:
            if self.exchange is exchange:
                exchange.upgrade_accepted(data[exc.args[0] :])
            return
        except HttpParserError as exc:
            log.debug("malformed response from %s:%d: %s", *self.key, exc)
            self.reusable = False
            if self.exchange is exchange:
                exchange.upstream_failed("the app sent a malformed response")
            else:
                self.close()
            return
        if self.exchange is exchange:
            exchange.relayed()

    def on_message_begin(self) -> None:
        self.parts = []
        self.length = None
        self.chunked = False
        self.upgrade = None
        self.connection = None
        self._until_close = False

    def on_header(self, name: bytes, value: bytes) -> None:
        kind = self.special.get(name.lower())
        if kind is None:
            self.parts += (name, b": ", value, b"\r\n")
        elif kind == LENGTH:
            self.length = int(value)  # llhttp checked: digits, once
        elif kind == CHUNKED:
            self.chunked = value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"  # else llhttp reads to close
        elif kind == SERVER:
            if self.keep_server:
                self.parts += (name, b": ", value, b"\r\n")
        elif kind == UPGRADE:
            self.upgrade = value
        elif kind == CONNECTION:
            self.connection = value if self.connection is None else self.connection + b"," + value

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        if self.connection is not None:
            self._drop_connection_listed(self.connection)
        parser = self._parser
        status = parser.get_status_code()
        self.reusable = parser.should_keep_alive()
        if status < 200:
            exchange.response_informational(status)
            return
        no_body = self._head_only or status in (204, 304)
        self._until_close = not no_body and self.length is None and not self.chunked
        exchange.response_head(status, no_body)
        if self._head_only:
            self._ended = True
            self._stale_parser = True
            exchange.response_end()

    def _drop_connection_listed(self, connection: bytes) -> None:
        """Headers the app's Connection header names are hop-by-hop too."""
        named = {t.strip().lower() for t in connection.split(b",")} - {b"close", b"keep-alive", b"upgrade", b""}
        if named:
            parts = self.parts
            kept: list[bytes] = []
            for i in range(0, len(parts), 4):
                if parts[i].lower() not in named:
                    kept += parts[i : i + 4]
            self.parts = kept

    def on_body(self, data: bytes) -> None:
        exchange = self.exchange
        if self._ended or exchange is None:
            self.reusable = False  # a body after a HEAD answer: framing is off, never reuse
            self.close()
            return
        exchange.response_body(data)

    def on_message_complete(self) -> None:
        if self._ended:
            self._stale_parser = False  # the HEAD answer had no body after all
            return
        exchange = self.exchange
        if exchange is None or self._parser.get_status_code() < 200:
            return
        self._ended = True
        exchange.response_end()

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.pause_client()
        elif self.exchange is not None:
            self.exchange.upstream_full(True)

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.resume_client()
        elif self.exchange is not None:
            self.exchange.upstream_full(False)

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            return self.tunnel.eof_from_upstream()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.tunnel is not None:
            self.tunnel.closed()
            return
        exchange = self.exchange
        if exchange is None:
            self.pool.forget(self)
        elif self._until_close and not self._ended:
            self._ended = True
            exchange.response_end()  # a response without length ends with its connection
        else:
            exchange.upstream_failed("the app closed the connection")

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def pause_reading(self) -> None:
        """The client cannot take more: stop reading the answer (back-pressure)."""
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def is_usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()


class UpstreamPool:
    """Idle keep-alive connections per instance address, and new connections when none is idle."""

    def __init__(self, limit_idle: int, timeout_idle: float, timeout_connect: float) -> None:
        self._limit_idle = limit_idle
        self._timeout_idle = timeout_idle
        self._timeout_connect = timeout_connect
        self._idle: dict[Key, list[UpstreamConnection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None  # set by Edge.start

    def take(self, host: str, port: int) -> UpstreamConnection | None:
        """The most recently used idle connection to host:port (warmest), or None."""
        idle = self._idle.get((host, port))
        while idle:
            conn = idle.pop()
            conn.is_idle = False
            transport = conn.transport
            if transport is not None and not transport.is_closing():
                conn.reused = True
                return conn
        return None

    def give(self, conn: UpstreamConnection) -> None:
        """Keep a connection whose last exchange ended cleanly; close it when it cannot be reused."""
        conn.exchange = None
        if not conn.reusable or not conn.is_usable():
            conn.close()
            return
        conn.resume_reading()  # an idle connection still reads, to notice its close
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = []
        elif len(idle) >= self._limit_idle:
            conn.close()
            return
        idle.append(conn)
        conn.is_idle = True
        loop = self.loop or asyncio.get_running_loop()
        conn.idle_since = loop.time()
        if conn.idle_timer is None:
            conn.idle_timer = loop.call_later(self._timeout_idle, self._expire, conn)

    def _expire(self, conn: UpstreamConnection) -> None:
        """The idle timer: one call_later handle per connection, not re-armed on every reuse
        (measured); when it fires it closes the connection if it has been idle long enough."""
        conn.idle_timer = None
        if not conn.is_idle:
            return  # in use: `give` arms it again
        loop = asyncio.get_running_loop()
        left = conn.idle_since + self._timeout_idle - loop.time()
        if left > 0.001:
            conn.idle_timer = loop.call_later(left, self._expire, conn)
            return
        self.forget(conn)
        conn.close()

    def forget(self, conn: UpstreamConnection) -> None:
        if not conn.is_idle:
            return
        conn.is_idle = False
        idle = self._idle.get(conn.key)
        if idle is not None and conn in idle:
            idle.remove(conn)
            if not idle:
                del self._idle[conn.key]

    def connect(self, host: str, port: int, exchange: Connecting) -> None:
        """Open a new connection; the exchange hears `connected` or `connect_failed`."""
        task = asyncio.get_running_loop().create_task(self._connect(host, port, exchange))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, host: str, port: int, exchange: Connecting) -> None:
        loop = asyncio.get_running_loop()
        key = (host, port)
        try:
            async with asyncio.timeout(self._timeout_connect):
                _, conn = await loop.create_connection(lambda: UpstreamConnection(self, key), host, port)
        except (OSError, TimeoutError) as exc:
            exchange.connect_failed(f"could not connect to the app: {exc.__class__.__name__}")
            return
        exchange.connected(conn)

    def close_address(self, host: str, port: int) -> None:
        """The instance at host:port stopped being ready: drop its idle connections."""
        for conn in self._idle.pop((host, port), []):
            conn.is_idle = False
            if conn.idle_timer is not None:
                conn.idle_timer.cancel()
                conn.idle_timer = None
            conn.close()

    async def close(self) -> None:
        """Shutdown: close every idle connection and stop connecting."""
        for host, port in list(self._idle):
            self.close_address(host, port)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
