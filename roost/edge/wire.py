"""Bytes on the wire: the request head sent upstream, the response heads and framing sent to
the client, and the edge's own short pages.

The edge never forwards a client's or an app's framing: it writes its own
request and status lines, the filtered headers, and a Content-Length or chunked
framing it chose. Error pages are text/plain, carry the request id and say
nothing internal. Pure functions of their arguments.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Final

from roost.edge.request import Request

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
NO_BODY_STATUSES = frozenset({204, 304})
# How an answer's body is framed towards the client.
NO_BODY: Final = 0
LENGTH: Final = 1
CHUNKED: Final = 2
TO_CLOSE: Final = 3
# How a response head ends: after X-Request-Id's, X-Roost-Start's or Set-Cookie's value, then the blank line.
END_CLOSE = b"\r\nConnection: close\r\n\r\n"
END_KEEP_ALIVE = b"\r\nConnection: keep-alive\r\n\r\n"  # HTTP/1.0 keeps a connection only when told
END_PLAIN = b"\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def request_head(
    req: Request,
    path: bytes,
    forwarded: tuple[bytes, bytes, bytes, bytes],
    prefix: bytes,
    tunnel: bool,
    trusted: bool,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """The head sent upstream: request line, filtered headers, our framing and X-Forwarded-*.

    `forwarded` is (for, proto, host, request id), already decided; `extra` are the slot's own
    headers (for a peer node's edge: the deployment chosen here, the region).
    """
    parts = [req.method, b" ", path, b" HTTP/1.1\r\n"]
    for name, value in req.headers:
        parts += (name, b": ", value, b"\r\n")
    if trusted and req.proxy_headers:
        for name, value in req.proxy_headers:
            parts += (name, b": ", value, b"\r\n")
    if req.chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    elif req.content_length is not None:
        parts.append(b"Content-Length: %d\r\n" % req.content_length)
    if tunnel and req.upgrade is not None:
        parts += (b"Connection: upgrade\r\nUpgrade: ", req.upgrade, b"\r\n")
    xff, proto, host, rid = forwarded
    parts += (b"X-Forwarded-For: ", xff, b"\r\nX-Forwarded-Proto: ", proto)
    parts += (b"\r\nX-Forwarded-Host: ", host, b"\r\nX-Request-Id: ", rid, b"\r\n")
    if prefix:
        parts += (b"X-Forwarded-Prefix: ", prefix, b"\r\n")
    for name, value in extra:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


class Clock:
    """The Date header value, formatted once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


def reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


STATUS_LINES = {int(s): b"HTTP/1.1 %d %s\r\n" % (s, s.phrase.encode()) for s in HTTPStatus}


def status_line(status: int) -> bytes:
    """The status line the edge writes: the standard reason phrase, whatever the app's was."""
    line = STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d \r\n" % status


def framing(length: int | None, no_body: bool, version: str) -> int:
    """How the answer's body reaches the client: none, the app's length, chunks we write
    (HTTP/1.1), or until the connection closes (HTTP/1.0, which has no chunks)."""
    if no_body:
        return NO_BODY
    if length is not None:
        return LENGTH
    return CHUNKED if version == "1.1" else TO_CLOSE


def head_end(keep: bool, version: str) -> bytes:
    """The Connection header (when one is needed) and the blank line that end a response head."""
    if not keep:
        return END_CLOSE
    return END_KEEP_ALIVE if version == "1.0" else END_PLAIN


def response_head(
    status: int,
    headers: list[bytes],
    length: int | None,
    body_framing: int,
    edge_headers: bytes,
    request_id: bytes,
    start_kind: bytes,
    cookie: bytes | None,
    end: bytes,
    node_line: bytes = b"",
) -> bytes:
    """The head the client gets: our status line, the app's filtered `headers` (name, ": ",
    value, CRLF pieces), our framing, `edge_headers` (Server), `node_line` (X-Roost-Node, a
    whole line or b""), X-Request-Id, X-Roost-Start (none when `start_kind` is b"": a peer
    edge's passes through), the split's Set-Cookie, and `end` (see `head_end`). A HEAD answer
    keeps its Content-Length."""
    parts = [status_line(status), *headers]
    if length is not None:
        parts.append(b"Content-Length: %d\r\n" % length)
    if body_framing == CHUNKED:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    parts += (edge_headers, node_line, b"X-Request-Id: ", request_id)
    if start_kind:
        parts += (b"\r\nX-Roost-Start: ", start_kind)
    if cookie is not None:
        parts += (b"\r\nSet-Cookie: ", cookie)
    parts.append(end)
    return b"".join(parts)


def informational_head(status: int, headers: list[bytes]) -> bytes:
    """A 1xx head passed on to an HTTP/1.1 client (103 Early Hints, say)."""
    return b"%b%b\r\n" % (status_line(status), b"".join(headers))


def switching_head(
    headers: list[bytes],
    upgrade: bytes,
    edge_headers: bytes,
    request_id: bytes,
    start_kind: bytes,
    node_line: bytes = b"",
) -> bytes:
    """The 101 head that opens a tunnel: the app's filtered headers and our own Connection/Upgrade
    (X-Roost-Node and X-Roost-Start as in `response_head`)."""
    head = [b"HTTP/1.1 101 Switching Protocols\r\n", *headers, b"Connection: upgrade\r\n"]
    head += (b"Upgrade: ", upgrade, b"\r\n", edge_headers, node_line, b"X-Request-Id: ", request_id)
    if start_kind:
        head += (b"\r\nX-Roost-Start: ", start_kind)
    head.append(b"\r\n\r\n")
    return b"".join(head)


def page(
    status: int,
    message: str,
    request_id: bytes,
    *,
    close: bool,
    head_only: bool = False,
    retry_after: int | None = None,
    server: bytes = b"",
    date: bytes = b"",
    extra: bytes = b"",
    body: bytes | None = None,
) -> bytes:
    """A complete short text/plain response: "<status> <message>" and the request id (or `body`),
    with `extra` header lines (each ending in CRLF)."""
    if body is None:
        body = b"%d %s\nrequest id: %s\n" % (status, message.encode(), request_id)
    head = [
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
        % (status, reason(status), len(body)),
        b"X-Request-Id: %s\r\n" % request_id,
        b"Cache-Control: no-store\r\n",
    ]
    if server:
        head.append(b"Server: %s\r\n" % server)
    if date:
        head.append(b"Date: %s\r\n" % date)
    if retry_after is not None:
        head.append(b"Retry-After: %d\r\n" % retry_after)
    if extra:
        head.append(extra)
    head.append(b"Connection: close\r\n\r\n" if close else b"\r\n")
    if not head_only:
        head.append(body)
    return b"".join(head)
