"""Bytes on the wire: the request head sent upstream, framing, and the edge's own short pages.

The edge never forwards a client's framing: it writes its own request line,
the filtered headers, and a Content-Length or chunked framing it generates.
Error pages are text/plain, carry the request id and say nothing internal.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

from roost.edge.request import Request

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
NO_BODY_STATUSES = frozenset({204, 304})


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
) -> bytes:
    """The head sent upstream: request line, filtered headers, our framing and X-Forwarded-*.

    `forwarded` is (for, proto, host, request id), already decided.
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
) -> bytes:
    """A complete short text/plain response: "<status> <message>" and the request id."""
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
    head.append(b"Connection: close\r\n\r\n" if close else b"\r\n")
    if not head_only:
        head.append(body)
    return b"".join(head)
