"""One client connection: parse requests strictly, serve them in order, keep the connection or close it.

The steps per request are read_head (httptools callbacks, size limits counted
here because httptools has none), queue (pipelined requests wait their turn,
reading pauses), serve (an Exchange), and after the answer either keep-alive
or close. Never talks to an instance itself; never answers out of order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import cast

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser

from roost.clientaddr import client_key, forwarded_client, is_trusted
from roost.edge import wire
from roost.edge.context import EdgeContext
from roost.edge.deadline import Deadline
from roost.edge.exchange import Exchange
from roost.edge.request import Rejected, Request
from roost.edge.tunnel import Tunnel

log = logging.getLogger("roost.edge")

# Why reading from the client is paused (a bit each); reading resumes when none is left.
PIPELINE, BODY, UPSTREAM, UPGRADE = 1, 2, 4, 8
# What the connection's timer is timing.
NOTHING, HEAD, IDLE = 0, 1, 2
MALFORMED = Rejected(400, "malformed request")


class ClientConnection(asyncio.Protocol):
    """An HTTP/1.1 server connection that forwards through exchanges; to each it is the
    `exchange.ClientSide` (the contract is written there)."""

    def __init__(
        self,
        ctx: EdgeContext,
        loop: asyncio.AbstractEventLoop,
        scheme: bytes = b"http",
        internal: bool = False,
        admitted: bool = False,
    ) -> None:
        """`admitted`: the connection already holds its place in the caps (the HTTPS door counted
        it from accept, through the handshake)."""
        self.ctx = ctx
        self.internal = internal
        self.loop = loop
        self.scheme = scheme
        self.transport: asyncio.Transport | None = None
        self.peer = b""
        self.trusted = False
        self.key: str | None = None
        self.active: Exchange | None = None
        self.tunnel: Tunnel | None = None
        self.write_paused = False
        self.finishing = False  # no request after the current ones: EOF seen, or the edge is closing
        self._admitted = admitted
        self._parser = HttpRequestParser(self)
        self._incoming: Request | None = None
        self._queue: deque[Request] = deque()
        self._paused = 0
        self._broken = False  # stop parsing: what comes in now is discarded
        self._done = False  # no more answers on this connection
        self._serving = False
        self._timer = Deadline(loop, self._timer_fired)  # a head read or an idle spell: see _wait
        self._request_timer = Deadline(loop, self._request_timer_fired)  # a phase of the active exchange
        self._linger: asyncio.TimerHandle | None = None
        self._timed: Exchange | None = None  # the exchange the request timer runs for
        self._waiting = NOTHING  # what the connection timer runs for: HEAD, IDLE or NOTHING
        self._on_tunnel_closed: Callable[[], None] | None = None
        self._head_count = 0
        self._head_size = 0
        self._head_raw = 0
        self._fresh_head = False
        self._upgraded: Request | None = None
        self._early = bytearray()

    # -- connection events ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        self.peer = address.encode()
        self.trusted = self.internal or is_trusted(address, self.ctx.networks)
        self.key = None if self.trusted else client_key(address)
        if not self._admitted and (self.ctx.closing or not self.ctx.guard.admit(self.key)):
            self.transport.write(
                wire.page(503, "too many connections", self.ctx.new_request_id(), close=True, retry_after=1)
            )
            self.transport.close()
            self._done = True
            return
        self._admitted = True
        self.ctx.connections.add(self)
        self._wait(HEAD, self.ctx.settings.timeout_header)

    def connection_lost(self, exc: Exception | None) -> None:
        self._done = True
        self._disarm()
        if self._admitted:
            self._admitted = False
            self.ctx.guard.leave(self.key)
            self.ctx.connection_closed(self)
        self._queue.clear()
        if self.tunnel is not None:
            self.tunnel.closed()
        elif self.active is not None:
            active, self.active = self.active, None
            active.client_gone()
        self._timed = None
        self._request_timer.cancel()

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            return self.tunnel.eof_from_client()
        if self._broken or self._incoming is not None or (self.active is None and not self._queue):
            return False  # nothing (complete) left to answer: close
        self.finishing = True  # answer what was asked, then close
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.tunnel is not None:
            self.tunnel.pause_upstream()
        elif self.active is not None and self.active.upstream is not None:
            self.active.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.tunnel is not None:
            self.tunnel.resume_upstream()
        elif self.active is not None and self.active.upstream is not None:
            self.active.upstream.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_client(data)
            return
        if self._broken:
            return
        if self._upgraded is not None:
            self._hold_early(data)
            return
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as exc:
            self._upgrade_started(data[exc.args[0] :])
        except HttpParserCallbackError as exc:
            if not self._broken:
                context = exc.__context__
                self._reject(context if isinstance(context, Rejected) else MALFORMED)
        except HttpParserError:
            self._reject(MALFORMED)
        else:
            req = self._incoming
            if req is not None and not req.head_done:
                self._count_raw_head(len(data))

    # -- step 1: read the head (httptools callbacks) ----------------------------------------

    def on_message_begin(self) -> None:
        if self._broken or self._done:
            raise MALFORMED
        self._incoming = Request(self.internal, self.trusted)
        self._head_count = self._head_size = self._head_raw = 0
        self._fresh_head = True

    def on_url(self, url: bytes) -> None:
        req = self._incoming
        if req is None:
            raise MALFORMED
        req.target += url
        if len(req.target) > self.ctx.settings.limit_request_line:
            raise Rejected(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_count += 1
        self._head_size += len(name) + len(value) + 4
        settings = self.ctx.settings
        if self._head_count > settings.limit_headers_count or self._head_size > settings.limit_headers_bytes:
            raise Rejected(431, "request headers too large")
        req = self._incoming
        if req is None:
            raise MALFORMED
        if not req.head_done:  # else a trailer: never forwarded
            req.add_header(name, value)

    def on_headers_complete(self) -> None:
        req = self._incoming
        if req is None:
            raise MALFORMED
        parser = self._parser
        req.finish_head(
            parser.get_method(), parser.get_http_version(), parser.should_keep_alive(), parser.should_upgrade()
        )
        self._stop_waiting()  # from here the exchange keeps the time
        self._queue.append(req)
        if self.active is None and len(self._queue) == 1:
            self._serve_next()
        else:
            self._pause(PIPELINE)

    def on_body(self, data: bytes) -> None:
        req = self._incoming
        if req is None or self._broken:
            raise MALFORMED
        req.body_size += len(data)
        sink = req.sink
        if sink is not None:
            sink.on_request_body(data)
        else:
            req.buffer(data)
            if req.body_buffered > self.ctx.settings.limit_body_buffer:
                self._pause(BODY)

    def on_message_complete(self) -> None:
        req = self._incoming
        if req is None:
            raise MALFORMED
        self._incoming = None
        req.body_done = True
        if req.sink is not None:
            req.sink.on_request_end()

    def _count_raw_head(self, size: int) -> None:
        """A head is still incomplete after a read: time it (slowloris), and bound what httptools
        buffers of an unfinished header line (it has no limit of its own)."""
        if self._waiting != HEAD and self.active is None:
            self._wait(HEAD, self.ctx.settings.timeout_header)
        if self._fresh_head:  # began inside this read: the part before it was the previous message
            self._fresh_head = False
            return
        self._head_raw += size
        settings = self.ctx.settings
        if self._head_raw > settings.limit_request_line + settings.limit_headers_bytes:
            self._reject(Rejected(431, "request headers too large"))

    def _reject(self, rejection: Rejected) -> None:
        """A framing or size error: answer it in turn, stop reading, close after."""
        self._broken = True
        self._pause(PIPELINE)
        req = self._incoming
        self._incoming = None
        if req is not None and req.head_done:  # the body went wrong
            active = self.active
            if active is not None and active.req is req:
                active.request_failed(rejection)
                return
            req.error = rejection
            return
        failed = req or Request()
        failed.error = rejection
        self._queue.append(failed)
        self._serve_next()

    # -- step 2: serve in order --------------------------------------------------------------

    def _serve_next(self) -> None:
        if self._serving:
            return
        self._serving = True
        try:
            while self.active is None and self._queue and not self._done:
                req = self._queue.popleft()
                if req.error is not None:
                    self._answer_rejected(req, req.error)
                    break
                exchange = self.active = Exchange(self.ctx, self, req)
                try:
                    exchange.start()
                except Exception:
                    log.exception("edge error on request %s", exchange.request_id.decode())
                    exchange.fail_internal()
        finally:
            self._serving = False
        if not self._queue:
            self._resume(PIPELINE)
        if self.active is None and not self._done:
            self._went_idle()

    def _answer_rejected(self, req: Request, rejection: Rejected) -> None:
        page = wire.page(
            rejection.status,
            rejection.message,
            self.ctx.new_request_id(),
            close=True,
            head_only=req.method == b"HEAD",
            server=self.ctx.server,
            date=self.ctx.clock.date(),
        )
        self.write(page)
        self._close()

    def _went_idle(self) -> None:
        if self.ctx.closing or self.finishing:
            self._close()
        elif self._incoming is not None and not self._incoming.head_done:
            self._wait(HEAD, self.ctx.settings.timeout_header)
        else:
            self._wait(IDLE, self.ctx.settings.timeout_keepalive)

    def exchange_done(self, exchange: Exchange, keep: bool) -> None:
        """The answer is complete: serve the next request, or close."""
        if self.active is exchange:
            self.active = None
        self._resume(BODY | UPSTREAM)
        req = exchange.req
        if not keep or not req.body_done or req.upgrade is not None:
            self._close()
        elif not self._serving:
            self._serve_next()

    def body_wanted(self) -> None:
        """An exchange took the request body: let it flow."""
        self._resume(BODY)

    def upstream_full(self, full: bool) -> None:
        if full:
            self._pause(UPSTREAM)
        else:
            self._resume(UPSTREAM)

    def rate_key(self, req: Request) -> str:
        """Who pays a token for this request: the peer, or the client behind a trusted proxy."""
        if self.key is not None:
            return self.key
        forwarded = req.forwarded_for
        address = self.peer.decode()
        if forwarded:
            address = forwarded_client(address, forwarded.decode("latin-1"), self.ctx.networks)
        return client_key(address)

    # -- upgrades ------------------------------------------------------------------------------

    def _upgrade_started(self, rest: bytes) -> None:
        """httptools stops at an Upgrade request's head: what follows belongs to the tunnel, if any."""
        if self._done:
            return
        req = self._queue[-1] if self._queue else self.active.req if self.active is not None else None
        if req is None or req.upgrade is None:
            self._reject(MALFORMED)
            return
        self._upgraded = req
        self._early += rest

    def _hold_early(self, data: bytes) -> None:
        """The tunnel's first bytes, sent before the app said 101."""
        self._early += data
        if len(self._early) > self.ctx.settings.limit_body_buffer:
            self._pause(UPGRADE)

    def take_early(self) -> bytes:
        early = bytes(self._early)
        self._early.clear()
        return early

    def open_tunnel(self, upstream: asyncio.Transport, on_closed: Callable[[], None]) -> Tunnel:
        """Splice this connection to `upstream` (the app said 101); `on_closed` when either ends."""
        if self.transport is None:
            raise RuntimeError("no transport")
        self._on_tunnel_closed = on_closed
        tunnel = self.tunnel = Tunnel(self.transport, upstream, self._tunnel_closed)
        self._upgraded = None
        self._stop_waiting()
        self._resume(PIPELINE | BODY | UPSTREAM | UPGRADE)
        return tunnel

    def _tunnel_closed(self) -> None:
        on_closed = self._on_tunnel_closed
        self._on_tunnel_closed = None
        if on_closed is not None:
            on_closed()
        self.active = None
        self._done = True

    # -- writing and closing -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not self._done:
            transport.write(data)

    def abort(self) -> None:
        """Cut the connection: an answer already under way cannot be finished."""
        self._done = True
        if self.transport is not None:
            self.transport.abort()

    def _close(self) -> None:
        """Close after what was written; linger (read and discard) if the client may still be sending."""
        if self._done:
            return
        self._done = True
        self._stop_waiting()
        transport = self.transport
        if transport is None:
            return
        unread = self._incoming is not None and not self._incoming.body_done
        if not self._broken and not unread and not self._queue and self._upgraded is None:
            transport.close()
            return
        self._broken = True
        self._paused = 0
        transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
        self._disarm()
        self._linger = self.loop.call_later(self.ctx.settings.grace_linger, transport.close)

    def shutdown(self) -> None:
        """The edge is closing: an idle connection closes now, a busy one after its answer."""
        self.finishing = True
        if self.active is None and self.tunnel is None and not self._queue:
            self._close()

    # -- timers and pausing ------------------------------------------------------------------

    def _wait(self, waiting: int, delay: float) -> None:
        """Start timing a head read or an idle spell (see deadline.py for why one handle serves all)."""
        self._waiting = waiting
        self._timer.set_in(delay)

    def _stop_waiting(self) -> None:
        self._waiting = NOTHING
        self._timer.clear()

    def _disarm(self) -> None:
        self._stop_waiting()
        self._timer.cancel()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None

    def _timer_fired(self) -> None:
        if self._done:
            return
        # head read (slowloris) or keep-alive idle timeout: close without a word
        self._done = True
        if self.transport is not None:
            self.transport.close()

    def time_request(self, exchange: Exchange, deadline: float) -> None:
        """Call `exchange.timed_out()` at loop time `deadline` unless `untime_request` (or a
        later `time_request`) comes first; a stream moves its deadline on every read at no cost."""
        self._timed = exchange
        self._request_timer.set(deadline)

    def untime_request(self, exchange: Exchange) -> None:
        if self._timed is exchange:
            self._timed = None
            self._request_timer.clear()

    def _request_timer_fired(self) -> None:
        exchange = self._timed
        if exchange is None:
            return
        self._timed = None
        exchange.timed_out()

    def _pause(self, reason: int) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reasons: int) -> None:
        if self._paused & reasons:
            self._paused &= ~reasons
            if not self._paused and self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
