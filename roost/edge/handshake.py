"""The HTTPS door: a TCP connection through its TLS handshake.

Counted in the edge's connection caps from the moment it is accepted (a handshake flood
fills the caps, not the daemon), given `timeout_handshake` to finish, and then served by the
`ClientConnection` it was made with, which already holds its place. Never parses HTTP.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import logging
import ssl
from typing import Any, cast

from roost.clientaddr import client_key, is_trusted
from roost.edge.client import ClientConnection
from roost.edge.context import EdgeContext

log = logging.getLogger("roost.edge")


def tls_protocol_class(loop: asyncio.AbstractEventLoop) -> Any:
    """The loop's own TLS protocol (uvloop's is compiled), else asyncio's."""
    try:
        import uvloop
        import uvloop.loop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.sslproto.SSLProtocol
    if isinstance(loop, uvloop.Loop):
        return uvloop.loop.SSLProtocol  # type: ignore[attr-defined]  # not in uvloop's stubs
    return asyncio.sslproto.SSLProtocol


class TlsDoor(asyncio.BufferedProtocol):
    """One accepted TCP connection on the HTTPS port: admitted to the caps, then its bytes go
    through the loop's TLS protocol to a ClientConnection, which is made once the handshake ends.

    Owns the place in the caps until then: a handshake that fails or times out gives it back
    here; after it, the ClientConnection gives it back when it closes."""

    def __init__(self, ctx: EdgeContext, loop: asyncio.AbstractEventLoop, context: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.conn = ClientConnection(ctx, loop, b"https", admitted=True)
        self.tls = tls_protocol_class(loop)(
            loop,
            self.conn,
            context,
            None,
            server_side=True,
            ssl_handshake_timeout=ctx.settings.timeout_handshake,
        )
        self.transport: asyncio.Transport | None = None
        self.key: str | None = None
        self._admitted = False  # holds a place in the caps that the ClientConnection does not hold yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        self.key = None if is_trusted(address, self.ctx.networks) else client_key(address)
        if self.ctx.closing or not self.ctx.guard.admit(self.key):
            self.transport.abort()  # over the caps: no HTTP page can be sent before TLS
            return
        self._admitted = True
        self.ctx.connections.add(self)
        self.tls.connection_made(transport)

    def get_buffer(self, sizehint: int) -> Any:
        return self.tls.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.tls.buffer_updated(nbytes)
        if self._admitted and self.conn.transport is not None:
            self._handed_over()

    def eof_received(self) -> bool | None:
        result: bool | None = self.tls.eof_received()
        return result

    def pause_writing(self) -> None:
        self.tls.pause_writing()

    def resume_writing(self) -> None:
        self.tls.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted and self.conn.transport is not None:
            self._handed_over()
        self.tls.connection_lost(exc)
        if self._admitted:  # the handshake never finished (failed, timed out, or the client left)
            log.debug("edge: a TLS handshake did not finish: %r", exc)
            self._admitted = False
            self.ctx.guard.leave(self.key)
            self.ctx.connection_closed(self)

    def _handed_over(self) -> None:
        """The handshake is done: the ClientConnection holds the place in the caps from now on."""
        self._admitted = False
        self.ctx.connections.discard(self)

    # -- context.Connection: the edge closing ------------------------------------------

    def shutdown(self) -> None:
        self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
