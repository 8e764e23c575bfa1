"""One request's trip through the edge, as named steps:

    start (admission.py: limits, route, split) -> read the body (small ones whole, before any slot)
    -> acquire (slot, or wait in the activator) -> forward (pooled connection, our own
    framing) -> relay (the answer, streamed) -> finish (slot back, connection back,
    counters, next request); what the client gets is written by response.py

Never spawns anything: it asks the activator for a slot. Every path ends the
instance half (slot released once, connection pooled or closed) and the
client half (answered once). One timer at a time, by phase: BODY (the
client's body arriving: 408 when it stalls), ANSWER (`limits.timeout` until the
app's head: 504, then the instance gets a grace to finish and a recycle if it
does not), STREAM (the answer's body: cut when silent for `limits.stream_idle`
or longer than `limits.stream_max`). Only the app's own slowness before its
head ever recycles an instance; a slow client never does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from roost.edge import wire
from roost.edge.admission import Refused, admit
from roost.edge.answers import Answer
from roost.edge.counters import Tally
from roost.edge.response import ResponseWriter
from roost.edge.routes import AppRoute
from roost.edge.tls import host_name
from roost.edge.upstream import PEER_SPECIAL, PEER_STARTED_SPECIAL, UpstreamConnection
from roost.model import DeploymentId, InstanceId
from roost.runtime.protocol import Slot, StartKind

if TYPE_CHECKING:
    from roost.edge.activator import Waiter
    from roost.edge.context import EdgeContext
    from roost.edge.request import Rejected, Request
    from roost.edge.tunnel import Tunnel

log = logging.getLogger("roost.edge")
RETRY_AFTER_FULL = 1
# What the client connection's request timer is timing for the exchange (see the module docstring).
UNTIMED, BODY, ANSWER, STREAM = 0, 1, 2, 3


class ClientSide(Protocol):
    """What an exchange needs of the client connection it answers (client.py's `ClientConnection`).

    The connection owns the socket, the reading, the order of answers and the timers; the
    exchange owns one request's trip. The connection creates the exchange and calls it
    concretely; the exchange calls back only through this, so imports point one way.
    """

    loop: asyncio.AbstractEventLoop
    peer: bytes  # the TCP peer's address
    scheme: bytes  # b"http" or b"https": the door the request came in by
    trusted: bool  # the peer is a trusted proxy (or Roost's internal door): its X-Forwarded-* count
    finishing: bool  # no request after the current ones: answer with Connection: close
    write_paused: bool  # the client's socket is full: an upstream connection starts paused

    def rate_key(self, req: Request) -> str:
        """Who pays a rate-limit token for `req`."""

    def write(self, data: bytes) -> None:
        """Send bytes of the answer (dropped once the connection is done)."""

    def abort(self) -> None:
        """Cut the connection: an answer already under way cannot be finished."""

    def body_wanted(self) -> None:
        """The exchange takes the request body: resume reading it."""

    def upstream_full(self, full: bool) -> None:
        """The app's socket is full (or drained): pause (or resume) reading the client."""

    def time_request(self, exchange: Exchange, deadline: float) -> None:
        """Call `exchange.timed_out()` at loop time `deadline`; a later call moves it."""

    def untime_request(self, exchange: Exchange) -> None:
        """No deadline for `exchange` any more."""

    def exchange_done(self, exchange: Exchange, keep: bool) -> None:
        """The answer is complete: serve the next request (`keep`) or close. Called once."""

    def take_early(self) -> bytes:
        """What the client sent after an Upgrade request's head, before the tunnel existed."""

    def open_tunnel(self, upstream: asyncio.Transport, on_closed: Callable[[], None]) -> Tunnel:
        """Splice the client to `upstream`; `on_closed` runs once, when either side ends."""


class Exchange:
    """One request and its answer; see the module docstring for the steps."""

    __slots__ = (
        "answered",
        "app",
        "body_sent",
        "client",
        "connecting",
        "cookie",
        "ctx",
        "deployment",
        "instance",
        "keep_client",
        "limit_body",
        "path",
        "phase",
        "prefix",
        "req",
        "request_id",
        "responded",
        "retried",
        "slot",
        "start_kind",
        "started",
        "status",
        "stream_end",
        "tally",
        "timeout_request",
        "timer",
        "upstream",
        "waiter",
        "writer",
    )

    def __init__(self, ctx: EdgeContext, client: ClientSide, req: Request) -> None:
        self.ctx = ctx
        self.client = client
        self.req = req
        self.started = time.monotonic()
        rid = req.sane_request_id() if client.trusted else None
        self.request_id = rid or ctx.new_request_id()
        self.deployment: DeploymentId | None = None
        self.tally: Tally = ctx.unrouted
        self.app: AppRoute | None = None
        self.limit_body = 0
        self.timeout_request = 0.0
        self.path = req.target
        self.prefix = b""
        self.slot: Slot | None = None
        self.instance: InstanceId | None = None  # the last instance that took it, for the request log
        self.upstream: UpstreamConnection | None = None
        self.waiter: Waiter | None = None
        self.timer: asyncio.TimerHandle | None = None  # the grace after a 504 (the request timer is the client's)
        self.phase = UNTIMED  # what the client connection's request timer times for us
        self.stream_end = 0.0  # loop time at which a streaming answer reaches limits.stream_max
        self.start_kind = b"hot"
        self.cookie: bytes | None = None
        self.status = 0
        self.responded = False  # a byte of the answer went to the client
        self.answered = False  # the client half is over
        self.keep_client = req.keep_alive
        self.body_sent = False
        self.retried = False
        self.connecting = False
        self.writer = ResponseWriter(client.write, self.request_id, ctx.server_line, ctx.server)

    # -- step 1: admission (limits, route, split) -------------------------------------------

    def start(self) -> None:
        if (self.ctx.tls.sites or self.ctx.challenges.answering) and self._tls_step():
            return
        admission = admit(self.ctx, self.req, self.client.rate_key(self.req), self.started)
        if isinstance(admission, Refused):
            if admission.app is not None:
                self._bound_by(admission.app)
            self.reply(admission.status, admission.message, admission.retry_after)
            return
        self._bound_by(admission.app)
        self.path = admission.path
        self.prefix = admission.prefix
        self.cookie = admission.cookie
        deployment = self.deployment = admission.deployment
        self.tally = self.ctx.tally(deployment)
        if self.req.body_done:
            self._acquire(deployment)
        else:
            self._read_body()

    def _tls_step(self) -> bool:
        """HTTPS: the domain's HSTS header on the answer. Plain HTTP: see `_answer_plain`. True when answered."""
        if self.client.scheme == b"https":
            self.writer.server_line = self.ctx.server_line + self.ctx.tls.hsts_line(host_name(self.req.host or b""))
            return False
        return not self.req.internal and self._answer_plain()

    def _answer_plain(self) -> bool:
        """On plain HTTP, before admission: an ACME CA's HTTP-01 challenge, or the redirect to HTTPS of
        a domain that has a certificate. True when answered."""
        req = self.req
        ctx = self.ctx
        answer = ctx.challenges.answer(req.target)
        if answer is not None:
            self.reply(200, "", body=answer)
            return True
        location = ctx.tls.redirect_location(host_name(req.host or b""), req.target)
        if location is None:
            return False
        status = 301 if req.method in (b"GET", b"HEAD") else 308  # 308 keeps the method and body
        self.reply(status, "moved to HTTPS", extra=b"Location: %s\r\n" % location)
        return True

    def _bound_by(self, app: AppRoute) -> None:
        self.app = app
        self.limit_body = app.limit_body
        self.timeout_request = app.timeout_request

    def fail_internal(self) -> None:
        """A bug on our side while handling this request: a 500, and the slot goes back."""
        self.keep_client = False
        if self.responded:
            self.client.abort()
            self._finish()
        else:
            self.reply(500, "internal error")

    # -- step 2: read the body -------------------------------------------------------------

    def _read_body(self) -> None:
        """Take the body before any slot, so a client that sends it slowly holds no instance
        (nginx buffers it the same way): a body of up to `limit_body_buffer` arrives whole,
        and a larger one is forwarded as it comes once that much is here. Its arrival is timed
        on its own (BODY: 408 when it stalls); the app's time starts when it is complete."""
        req = self.req
        req.sink = self
        if req.expect_continue:
            req.expect_continue = False  # ours to answer, once
            self.client.write(wire.CONTINUE)
        self._time(BODY, self.ctx.settings.timeout_body)
        self.client.body_wanted()

    def _body_read(self) -> None:
        """The body is complete, or more than we read ahead of a slot: now take one."""
        deployment = self.deployment
        self.req.sink = None  # the client connection holds what comes next, and pauses
        self._stop_timer()  # the activator bounds the wait; _forward times what follows
        if deployment is not None:
            self._acquire(deployment)

    # -- step 3: acquire a slot ------------------------------------------------------------

    def _acquire(self, deployment: DeploymentId) -> None:
        activator = self.ctx.activator
        slot = activator.try_acquire(deployment)
        if slot is not None:
            self._forward(slot)
            return
        region = self.req.region
        self.waiter = activator.wait(deployment, self, "" if region is None else region.decode("ascii"))
        if self.waiter is None:
            self.reply(503, "too many requests are waiting for this app", RETRY_AFTER_FULL)

    def activated(self, slot: Slot, started: bool) -> None:
        """The activator's answer: a slot that was not free when we asked. Waiting only for a
        slot on an instance already ready is still hot; waiting for its start is warm (a fork
        from the zygote) or cold (a full import)."""
        self.waiter = None
        if started:
            self.start_kind = b"warm" if slot.start_kind is StartKind.FORK else b"cold"
        self._forward(slot)

    def not_activated(self, status: int, message: str, retry_after: int | None) -> None:
        self.waiter = None
        self.reply(status, message, retry_after)

    # -- step 4: forward -------------------------------------------------------------------

    def _forward(self, slot: Slot) -> None:
        self.slot = slot
        self.instance = slot.instance
        self.tally.in_flight += 1
        if not self.retried:
            self.tally.starts[self.start_kind] += 1
        if self.phase == UNTIMED and self.timer is None:
            if self.req.body_done:
                self._time(ANSWER, self.timeout_request)
            else:
                self._time(BODY, self.ctx.settings.timeout_body)
        conn = self.ctx.pool.take(slot.host, slot.port)
        if conn is None:
            self.connecting = True
            self.ctx.pool.connect(slot.host, slot.port, self)
        else:
            self._send(conn)

    def connected(self, conn: UpstreamConnection) -> None:
        self.connecting = False
        if self.slot is None:  # the client left meanwhile: keep the fresh connection for others
            conn.reusable = True
            self.ctx.pool.give(conn)
            return
        self._send(conn)

    def connect_failed(self, why: str) -> None:
        """No connection to the slot's address: its owner hears so (a peer node's edge that does not
        answer is left alone for a while), then the usual retry once or 502."""
        self.connecting = False
        slot = self.slot
        if slot is not None:
            slot.unreachable()
            self.upstream_failed(why)

    def _send(self, conn: UpstreamConnection) -> None:
        """Write our head (and what body we hold) upstream; the rest of the body follows as it comes."""
        req = self.req
        if req.body_size > self.limit_body:
            self.ctx.pool.give(conn)
            self._body_too_large()
            return
        self.upstream = conn
        slot = self.slot
        extra = () if slot is None else slot.headers
        peer = None
        if slot is not None and slot.node:  # waited here for a start: that part of the answer is ours
            peer = PEER_SPECIAL if self.start_kind == b"hot" else PEER_STARTED_SPECIAL
        conn.begin(self, req.method == b"HEAD", not self.ctx.server, self.client.write_paused, peer)
        client = self.client
        forwarded = (*req.forwarded(client.peer, client.scheme, client.trusted), self.request_id)
        head = wire.request_head(req, self.path, forwarded, self.prefix, req.upgrade is not None, client.trusted, extra)
        body = req.take_body() if req.body else None
        if body:
            self.body_sent = True
            head += b"".join(map(wire.chunk, body)) if req.chunked else b"".join(body)
        if req.body_done:
            if req.chunked:
                head += wire.LAST_CHUNK
        else:
            req.sink = self
        conn.write(head)
        if not req.body_done:
            self.client.body_wanted()  # (100 Continue, if asked for, went out when we began reading the body)

    def on_request_body(self, data: bytes) -> None:
        """More request body from the client: read ahead of a slot, or forwarded to the app."""
        req = self.req
        conn = self.upstream
        if req.body_size > self.limit_body:
            self._body_too_large()
            return
        if self.phase == BODY:
            self._time(BODY, self.ctx.settings.timeout_body)
        if conn is None:
            req.buffer(data)
            if self.slot is None and req.body_buffered > self.ctx.settings.limit_body_buffer:
                self._body_read()
        else:
            conn.write(wire.chunk(data) if req.chunked else data)
            self.body_sent = True

    def on_request_end(self) -> None:
        req = self.req
        req.sink = None
        conn = self.upstream
        if conn is None:
            if self.slot is None:
                self._body_read()
            return
        if req.chunked:
            conn.write(wire.LAST_CHUNK)
        if self.phase == BODY:  # the client's part is done: the app's time starts
            self._time(ANSWER, self.timeout_request)

    def request_failed(self, rejection: Rejected) -> None:
        """The client's body turned out malformed (bad chunk): answer if we still can, and close."""
        self.req.sink = None
        self.keep_client = False
        if self.answered:
            return
        if self.responded:
            self.client.abort()
        else:
            self.reply(rejection.status, rejection.message)

    def _body_too_large(self) -> None:
        self.req.sink = None
        self.keep_client = False
        if self.responded:
            self.client.abort()
        else:
            self.reply(413, self.app.body_too_large if self.app is not None else "request body too large")

    def upstream_full(self, full: bool) -> None:
        """The upstream's write buffer filled (or drained): stop (or resume) reading the client.
        While the app does not take our body, the wait is the app's (ANSWER), not the client's."""
        self.client.upstream_full(full)
        if full and self.phase == BODY:
            self._time(ANSWER, self.timeout_request)
        elif not full and self.phase == ANSWER and self.req.sink is self:
            self._time(BODY, self.ctx.settings.timeout_body)

    # -- step 5: relay the answer ----------------------------------------------------------

    def response_informational(self, status: int) -> None:
        """A 1xx: 101 waits for the upgrade; 100 was ours to send; others go to HTTP/1.1 clients."""
        self.status = status
        conn = self.upstream
        if status in (100, 101) or self.answered or self.req.version != "1.1" or conn is None:
            return
        self.writer.informational(status, conn.parts)

    def response_head(self, status: int, no_body: bool) -> None:
        """The app's status and headers, filtered by the connection: write ours around them."""
        self.status = status
        conn = self.upstream
        if self.answered or conn is None:
            return
        req = self.req
        self.responded = True
        if self.phase != UNTIMED:
            self.phase = STREAM  # the head is here: `relayed` times the rest as a stream
        keep = self.keep_client and not self.ctx.closing and not self.client.finishing
        # (a body still coming is judged at the end: see ClientConnection.exchange_done)
        slot = self.slot
        if slot is not None and slot.node:  # a peer node's edge answered: its X-Roost-* pass through
            start_kind, node_line = (b"" if self.start_kind == b"hot" else self.start_kind), b""
        else:
            start_kind, node_line = self.start_kind, self.ctx.node_line
        self.keep_client = self.writer.head(
            status, conn.parts, conn.length, no_body, req.version, keep, start_kind, self.cookie, node_line
        )

    def response_body(self, data: bytes) -> None:
        if not self.answered:
            self.writer.body(data)

    def response_end(self) -> None:
        """The app's answer is complete (its connection may be reused)."""
        if not self.answered:
            self.writer.end()
        conn = self.upstream
        if conn is not None and (not self.req.body_done or self.req.sink is not None):
            conn.reusable = False  # the app answered before reading our whole body
        self.writer.flush()
        self._finish()

    def relayed(self) -> None:
        """After a read from the app that did not end its answer: flush, and time the stream,
        silent for at most limits.stream_idle, and in all at most limits.stream_max."""
        self.writer.flush()
        app = self.app
        if self.phase == STREAM and app is not None:
            now = self.client.loop.time()
            if not self.stream_end:
                self.stream_end = now + app.timeout_stream
            self.client.time_request(self, min(now + app.timeout_stream_idle, self.stream_end))

    def upgrade_accepted(self, rest: bytes) -> None:
        """The app answered 101: write its head and splice the two connections."""
        conn = self.upstream
        req = self.req
        if conn is None or conn.transport is None or self.answered:
            return
        if self.status != 101 or req.upgrade is None:
            self.upstream_failed("the app switched protocols unasked")
            return
        self._stop_timer()
        self.responded = True
        slot = self.slot
        if slot is not None and slot.node:  # as in response_head
            self.writer.switching(conn.parts, conn.upgrade or req.upgrade, b"", b"")
        else:
            self.writer.switching(conn.parts, conn.upgrade or req.upgrade, self.start_kind, self.ctx.node_line)
        self._record()
        self.answered = True
        tunnel = conn.tunnel = self.client.open_tunnel(conn.transport, self._tunnel_closed)
        tunnel.start(req.early + self.client.take_early(), rest)

    def _tunnel_closed(self) -> None:
        self.upstream = None
        self._release_slot()

    # -- step 6: finish --------------------------------------------------------------------

    def _finish(self) -> None:
        """The app's answer is over: give back the instance half; answer the client if not yet."""
        self._stop_timer()
        conn = self.upstream
        self.upstream = None
        self.req.sink = None
        if conn is not None:
            self.ctx.pool.give(conn)
        self._release_slot()
        self._end_client_half()

    def reply(
        self,
        status: int,
        message: str,
        retry_after: int | None = None,
        *,
        body: bytes | None = None,
        extra: bytes = b"",
    ) -> None:
        """Answer with the edge's own short page, then finish both halves."""
        if self.answered:
            return
        self.status = status
        if status == 413 or not self.req.body_done:
            self.keep_client = False
        self.writer.page(
            status,
            message,
            close=not self.keep_client,
            head_only=self.req.method == b"HEAD",
            retry_after=retry_after,
            date=self.ctx.clock.date(),
            extra=extra,
            body=body,
        )
        self.responded = True
        if self.upstream is not None:
            self.upstream.reusable = False
        self._finish()

    def _end_client_half(self) -> None:
        if self.answered:
            return
        self.answered = True
        self._record()
        self.client.exchange_done(self, self.keep_client)

    def _record(self) -> None:
        now = time.monotonic()
        self.tally.record(self.status, now - self.started, now)
        if self.ctx.on_answer is not None and self.deployment is not None:
            req = self.req
            seconds = now - self.started
            answer = Answer(
                self.deployment, req.method, req.target, self.status, seconds, self.start_kind, self.instance
            )
            self.ctx.on_answer(answer)

    def _release_slot(self) -> None:
        slot = self.slot
        if slot is not None:
            self.slot = None
            self.tally.in_flight -= 1
            slot.release()

    def _time(self, phase: int, delay: float) -> None:
        """Time `phase` from now: the client connection calls `timed_out` after `delay` seconds."""
        self.phase = phase
        self.client.time_request(self, self.client.loop.time() + delay)

    def _stop_timer(self) -> None:
        if self.phase != UNTIMED:
            self.phase = UNTIMED
            self.client.untime_request(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # -- failures --------------------------------------------------------------------------

    def upstream_failed(self, why: str) -> None:
        """The connection to the app broke (or never came): retry once if nothing was lost, else 502."""
        conn = self.upstream
        self.upstream = None
        self.req.sink = None
        if conn is not None:
            conn.exchange = None
            conn.close()
        if self.answered:  # timed out already: the app is done with this request one way or another
            self._stop_timer()
            self._release_slot()
            return
        if self._is_retryable(conn) and self.deployment is not None:
            self._retry(self.deployment)
            return
        if self.responded:
            self.keep_client = False
            self.writer.flush()
            self.client.abort()
            self._finish()
        elif self.slot is not None and not self.slot.node:
            # the page says why when the runtime knows (e.g. "exceeded its memory limit of 128 MB")
            self.ctx.explain_end(self.slot.instance, self._reply_failed)
        else:  # (a peer node's edge would have answered with its own page if it could)
            self.reply(502, "the app failed to answer")

    def _reply_failed(self, reason: str) -> None:
        """`reason` is EdgeContext.public_reason's: the memory sentence or "" (never the app's output)."""
        self.reply(502, f"the app failed to answer: the instance {reason}" if reason else "the app failed to answer")

    def _is_retryable(self, conn: UpstreamConnection | None) -> bool:
        """Once, for an idempotent request the app cannot have begun: the connection never came
        (`conn` None), or a pooled one that the app had closed while it sat idle (no answer byte,
        no body sent: the keep-alive race). A fresh connection that took our head and then broke
        is the app failing on this request: a 502, never a second run."""
        if self.retried or self.responded or self.body_sent or not self.req.is_idempotent:
            return False
        return conn is None or (conn.reused and not conn.received)

    def _retry(self, deployment: DeploymentId) -> None:
        """The second try, on another instance if one has room, else the same one (or the queue)."""
        self.retried = True
        failed = self.slot
        slot = self.ctx.activator.try_acquire(deployment)
        if slot is not None and failed is not None and slot.instance == failed.instance:
            slot = self.ctx.activator.instead_of(deployment, slot)
        self._release_slot()
        if slot is None:
            self._acquire(deployment)
        else:
            self._forward(slot)

    def timed_out(self) -> None:
        """The client connection's request timer fired: what it means depends on the phase."""
        phase = self.phase
        self.phase = UNTIMED
        if phase == BODY:
            self._body_timed_out()
        elif phase == STREAM:
            self._stream_timed_out()
        else:
            self._answer_timed_out()

    def _body_timed_out(self) -> None:
        """The client stopped sending its body: 408, and the app (if it has the request) sees
        the connection close. The client's slowness: never a recycle."""
        self.req.sink = None
        self.keep_client = False
        if self.waiter is not None:
            self.ctx.activator.leave(self.waiter)
            self.waiter = None
        timeout = self.ctx.settings.timeout_body
        self.reply(408, f"the request body did not arrive in time (nothing for {timeout:g}s)")

    def _stream_timed_out(self) -> None:
        """A streaming answer went silent past limits.stream_idle, or ran past limits.stream_max:
        cut both ends. A client that stops reading stalls a stream too, so this says nothing
        about the app's health: never a recycle."""
        app = self.app
        if app is not None:
            log.info(
                "request %s: stream cut (limits.stream_idle = %gs, limits.stream_max = %gs)",
                self.request_id.decode(),
                app.timeout_stream_idle,
                app.timeout_stream,
            )
        self.keep_client = False
        self.writer.flush()
        self.client.abort()
        if self.upstream is not None:
            self.upstream.reusable = False
        self._finish()

    def _answer_timed_out(self) -> None:
        """Over the app's time limit with no head yet: 504 now; the instance gets a grace to
        finish, then a recycle."""
        self.req.sink = None
        if self.waiter is not None:  # waiting again after a failed first try
            self.ctx.activator.leave(self.waiter)
            self.waiter = None
        if self.responded:
            self.keep_client = False
            self.writer.flush()
            self.client.abort()
        else:
            self.status = 504
            self.keep_client = False
            self.writer.page(504, "the app did not answer in time", close=True)
            self.responded = True
        self._end_client_half()
        if self.upstream is None:  # still connecting: nothing runs on the instance yet
            self._release_slot()
        else:
            self.timer = self.client.loop.call_later(self.ctx.settings.grace_recycle, self._recycle)

    def _recycle(self) -> None:
        self.timer = None
        slot = self.slot
        if slot is not None and not slot.node:  # a peer node's edge recycles its own instance
            limit = self.timeout_request
            self.ctx.recycle(slot.instance, f"a request ran past its {limit:g}s time limit and did not finish")
        if self.upstream is not None:
            self.upstream.exchange = None
            self.upstream.abort()
            self.upstream = None
        self._release_slot()

    def client_gone(self) -> None:
        """The client connection closed: stop waiting, drop the upstream connection, give the slot back."""
        if self.waiter is not None:
            self.ctx.activator.leave(self.waiter)
            self.waiter = None
        if self.answered:
            return
        self.answered = True
        self.req.sink = None
        if not self.responded:
            self.status = 499  # nginx's "client closed request"
        self._record()
        self._stop_timer()
        conn = self.upstream
        self.upstream = None
        if conn is not None:
            conn.exchange = None
            conn.abort()
        self._release_slot()
