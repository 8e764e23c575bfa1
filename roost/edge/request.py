"""One client request as the edge parsed it, and the header rules that make it safe to forward.

llhttp (strict, never lenient) already rejects most smuggling tricks; this
module adds what it allows: any Transfer-Encoding but a lone `chunked`,
Transfer-Encoding in HTTP/1.0, a missing or repeated Host, odd Expect values.
It sorts every header into forwarded, dropped (hop-by-hop, X-Roost-*, any
name with an underscore) or kept aside to be rewritten (framing,
X-Forwarded-*, X-Request-Id) or believed from Roost itself only (X-Roost-Cron,
X-Roost-Deployment, X-Roost-Region: see `_add_roost`).
"""

from __future__ import annotations

import re
from collections import deque
from typing import Protocol

# What on_header does with a header, by lower-case name; absent: forward as is.
HOST, LENGTH, CHUNKED, CONNECTION, DROP, UPGRADE, EXPECT, XFF, XFP, XFH, XRID, PROXY_ONLY, COOKIE = range(13)
SPECIAL: dict[bytes, int] = {
    b"host": HOST,
    b"content-length": LENGTH,
    b"transfer-encoding": CHUNKED,
    b"connection": CONNECTION,
    b"keep-alive": DROP,
    b"te": DROP,
    b"trailer": DROP,
    b"upgrade": UPGRADE,
    b"expect": EXPECT,
    b"x-forwarded-for": XFF,
    b"x-forwarded-proto": XFP,
    b"x-forwarded-host": XFH,
    b"x-request-id": XRID,
    b"x-forwarded-prefix": DROP,  # only the edge sets it, for path routes
    b"forwarded": PROXY_ONLY,
    b"x-real-ip": PROXY_ONLY,
    b"x-forwarded-port": PROXY_ONLY,
    b"x-forwarded-server": PROXY_ONLY,
    b"cookie": COOKIE,
}
DROP_PREFIXES = (b"x-roost-", b"proxy-")  # X-Roost-Cron and friends never come from outside
CRON_HEADER = b"x-roost-cron"  # kept only on the internal door
# Internal door and trusted peers (another Roost edge forwarding to this one): the deployment
# that must serve (cron: production's; a forwarded request: the one the first edge's split chose).
PIN_HEADER = b"x-roost-deployment"
# Trusted peers only: where the demand of a request forwarded to the head comes from (a region name).
REGION_HEADER = b"x-roost-region"
SANE_REGION = re.compile(rb"[A-Za-z0-9._-]{1,64}")
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")
VALID_HOST = re.compile(rb"(?:[A-Za-z0-9._~!$&'()*+,;=%-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?")
METHODS_REJECTED = {b"CONNECT", b"TRACE"}
IDEMPOTENT = {b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"}


class Rejected(Exception):
    """Raised from a parser callback to stop parsing: the request gets `status` and the connection closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BodySink(Protocol):
    """Who takes a request's body as the client connection parses it (exchange.py's `Exchange`)."""

    def on_request_body(self, data: bytes) -> None:
        """More of the body, unframed."""

    def on_request_end(self) -> None:
        """The body is complete; the sink detaches itself (sets `sink` to None)."""


class Request:
    """The head of one request, plus its body while no upstream takes it yet.

    `sink` is the exchange forwarding the body; until one is attached, body
    chunks wait in `body` (reading pauses beyond a small limit).
    """

    __slots__ = (
        "body",
        "body_buffered",
        "body_done",
        "body_size",
        "chunked",
        "connection",
        "content_length",
        "cookies",
        "early",
        "error",
        "expect_continue",
        "forwarded_for",
        "forwarded_host",
        "forwarded_proto",
        "head_done",
        "headers",
        "host",
        "internal",
        "keep_alive",
        "method",
        "pinned",
        "proxy_headers",
        "region",
        "request_id",
        "sink",
        "target",
        "trusted",
        "upgrade",
        "version",
    )

    def __init__(self, internal: bool = False, trusted: bool = False) -> None:
        self.internal = internal  # from Roost itself (cron): X-Roost-Cron passes, private paths open
        self.trusted = trusted or internal  # also from a trusted peer: X-Roost-Deployment and -Region count
        self.method = b""
        self.target = b""
        self.version = "1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.host: bytes | None = None
        self.content_length: int | None = None
        self.chunked = False
        self.connection: bytes | None = None
        self.upgrade: bytes | None = None
        self.expect_continue = False
        self.forwarded_for: bytes | None = None
        self.forwarded_proto: bytes | None = None
        self.forwarded_host: bytes | None = None
        self.request_id: bytes | None = None
        self.proxy_headers: list[tuple[bytes, bytes]] | None = None
        self.cookies: list[bytes] | None = None
        self.pinned: bytes | None = None  # X-Roost-Deployment, from the internal door or a trusted peer
        self.region: bytes | None = None  # X-Roost-Region, from a trusted peer (a forwarding edge)
        self.keep_alive = True
        self.head_done = False
        self.error: Rejected | None = None
        self.body: deque[bytes] = deque()
        self.body_buffered = 0
        self.body_size = 0
        self.body_done = False
        self.sink: BodySink | None = None
        self.early = b""  # bytes after an Upgrade request's head: the start of the tunnel

    @property
    def is_idempotent(self) -> bool:
        return self.method in IDEMPOTENT

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def add_header(self, name: bytes, value: bytes) -> None:
        """Sort one header (see SPECIAL). Raises Rejected for a repeated Host or a bad Transfer-Encoding.

        A name with an underscore is dropped, as nginx does by default: WSGI and CGI servers
        turn `X_Roost_Cron` into the same HTTP_X_ROOST_CRON as `X-Roost-Cron`, so it would
        slip past every rule below that is keyed on the hyphenated name.
        """
        if b"_" in name:
            return
        lname = name.lower()
        kind = SPECIAL.get(lname)
        if kind is None:
            if not lname.startswith(DROP_PREFIXES):
                self.headers.append((name, value))
            elif self.trusted:
                self._add_roost(lname, name, value)
        elif kind == HOST:
            if self.host is not None:
                raise Rejected(400, "more than one Host header")
            self.host = value.strip()
            self.headers.append((name, self.host))
        elif kind == COOKIE:
            self.headers.append((name, value))
            self.cookies = [value] if self.cookies is None else [*self.cookies, value]
        else:
            self._add_special(kind, name, value)

    def _add_roost(self, lname: bytes, name: bytes, value: bytes) -> None:
        """Roost's own headers, from the internal door or a trusted peer: X-Roost-Cron goes to the
        app (internal door only), X-Roost-Deployment picks the deployment, X-Roost-Region says
        where a forwarded request came from (neither is forwarded to the app)."""
        if lname == CRON_HEADER:
            if self.internal:
                self.headers.append((name, value))
        elif lname == PIN_HEADER:
            self.pinned = value.strip()
        elif lname == REGION_HEADER:
            region = value.strip()
            self.region = region if SANE_REGION.fullmatch(region) else None

    def _add_special(self, kind: int, name: bytes, value: bytes) -> None:
        if kind == LENGTH:
            self.content_length = int(value)  # llhttp accepted it: digits, at most once
        elif kind == CHUNKED:
            if value.strip().lower() != b"chunked":
                raise Rejected(400, "Transfer-Encoding other than chunked")
            self.chunked = True
        elif kind == CONNECTION:
            self.connection = value if self.connection is None else self.connection + b"," + value
        elif kind == UPGRADE:
            self.upgrade = value.strip()
        elif kind == EXPECT:
            if value.strip().lower() != b"100-continue":
                raise Rejected(417, "only Expect: 100-continue is understood")
            self.expect_continue = True
        else:
            self._add_forwarding(kind, name, value)

    def _add_forwarding(self, kind: int, name: bytes, value: bytes) -> None:
        """X-Forwarded-*, X-Request-Id and proxy-only headers: kept aside, believed from trusted proxies only."""
        if kind == XFF:
            self.forwarded_for = value if self.forwarded_for is None else self.forwarded_for + b", " + value
        elif kind == XFP:
            self.forwarded_proto = value.strip()
        elif kind == XFH:
            self.forwarded_host = value.strip()
        elif kind == XRID:
            self.request_id = value.strip()
        elif kind == PROXY_ONLY:
            self.proxy_headers = [(name, value)] if self.proxy_headers is None else [*self.proxy_headers, (name, value)]

    def finish_head(self, method: bytes, version: str, keep_alive: bool, upgrade: bool) -> None:
        """Check the whole head once it is complete. Raises Rejected."""
        self.method = method
        self.version = version
        self.keep_alive = keep_alive
        if version not in ("1.1", "1.0"):
            raise Rejected(505 if version[:1] >= "2" else 400, "only HTTP/1.0 and HTTP/1.1 are served")
        if method in METHODS_REJECTED:
            raise Rejected(405, f"{method.decode()} is not allowed")
        if self.target[:1] != b"/" and self.target != b"*":
            self._absolute_form()
        if self.host is None and version == "1.1":
            raise Rejected(400, "no Host header")
        if self.host is not None and not VALID_HOST.fullmatch(self.host):
            raise Rejected(400, "invalid Host header")
        if self.chunked and version == "1.0":
            raise Rejected(400, "Transfer-Encoding in an HTTP/1.0 request")
        if not upgrade:
            self.upgrade = None
        elif self.has_body:
            raise Rejected(400, "an Upgrade request with a body")
        if self.connection is not None:
            self._drop_connection_listed(self.connection)
        self.head_done = True
        self.body_done = not self.has_body  # llhttp's on_message_complete follows at once

    def _absolute_form(self) -> None:
        """`GET http://host/path`: the authority replaces Host (RFC 9112, 3.2.2); upstream gets origin-form."""
        scheme, sep, rest = self.target.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            raise Rejected(400, "invalid request target")
        end = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
        authority, path = rest[:end].rpartition(b"@")[2], rest[end:]
        if not authority:
            raise Rejected(400, "invalid request target")
        self.target = path if path.startswith(b"/") else b"/" + path
        self.host = authority
        self.headers = [(n, v) for n, v in self.headers if n.lower() != b"host"]
        self.headers.append((b"Host", authority))

    def _drop_connection_listed(self, connection: bytes) -> None:
        """Connection names more hop-by-hop headers: remove them too (never the framing we rebuild)."""
        named = {t.strip().lower() for t in connection.split(b",")} - {b"close", b"keep-alive", b"upgrade", b""}
        if named:
            self.headers = [(n, v) for n, v in self.headers if n.lower() not in named]
            if b"cookie" in named:
                self.cookies = None

    def buffer(self, data: bytes) -> None:
        self.body.append(data)
        self.body_buffered += len(data)

    def take_body(self) -> list[bytes]:
        chunks = list(self.body)
        self.body.clear()
        self.body_buffered = 0
        return chunks

    def sane_request_id(self) -> bytes | None:
        rid = self.request_id
        return rid if rid is not None and SANE_REQUEST_ID.fullmatch(rid) else None

    def forwarded(self, peer: bytes, scheme: bytes, trusted: bool) -> tuple[bytes, bytes, bytes]:
        """X-Forwarded-For/Proto/Host for the app: the client's own are believed from a trusted
        proxy only (`trusted`), and the peer is appended to its chain."""
        host = self.host or b""
        if trusted:
            xff = self.forwarded_for + b", " + peer if self.forwarded_for else peer
            return xff, self.forwarded_proto or scheme, self.forwarded_host or host
        return peer, scheme, host
