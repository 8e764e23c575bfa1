"""The request table: ordinary and hostile raw requests, the status the edge answers and
whether the connection stays open. h11 judges each request independently: where it
disagrees with the edge, the row says why (a policy of ours, not a parsing difference)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import h11
import pytest

from tests.unit.edge.conftest import LIMIT_BODY
from tests.unit.edge.harness import (
    LoopbackRuntime,
    Plan,
    Running,
    answer,
    raw_server,
    route,
    running_edge,
    table,
    until,
)

H = b"Host: hello.localhost\r\n"


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    status: int
    stays_open: bool
    h11_accepts: bool  # what an independent parser makes of the request
    method: str = "GET"


def get(head: bytes = b"", line: bytes = b"GET / HTTP/1.1") -> bytes:
    return line + b"\r\n" + head + b"\r\n"


def post(head: bytes, body: bytes = b"") -> bytes:
    return b"POST /echo HTTP/1.1\r\n" + H + head + b"\r\n" + body


CHUNKED = b"Transfer-Encoding: chunked\r\n"
MANY = b"".join(b"X-H%d: v\r\n" % i for i in range(100))
BIG = b"".join(b"X-Big%d: %s\r\n" % (i, b"v" * 1000) for i in range(17))
LIMIT_TARGET = 8 * 1024  # EdgeSettings.limit_request_line: the request target's length
LIMIT_HEADERS = 16 * 1024  # EdgeSettings.limit_headers_bytes: "Name: value\r\n" lines, added up


def target(size: int) -> bytes:
    return b"GET /" + b"a" * (size - 1) + b" HTTP/1.1"


def headers_of(size: int) -> bytes:
    """Host plus one filler header: a header block of exactly `size` bytes."""
    filler = size - len(H) - len(b"X-Fill: \r\n")
    block = H + b"X-Fill: " + b"v" * filler + b"\r\n"
    assert len(block) == size
    return block


CASES = [
    # ordinary
    Case("plain GET", get(H), 200, True, True),
    Case("port and case in Host", get(b"Host: HELLO.localhost:8080\r\n"), 200, True, True),
    Case("HEAD", get(H, b"HEAD / HTTP/1.1"), 200, True, True, "HEAD"),
    Case("HTTP/1.0 closes", get(H, b"GET / HTTP/1.0"), 200, False, True),
    Case("HTTP/1.0 keep-alive", get(H + b"Connection: keep-alive\r\n", b"GET / HTTP/1.0"), 200, True, True),
    Case(
        "HTTP/1.0 keep-alive, streamed answer",
        b"GET /echo HTTP/1.0\r\n" + H + b"Connection: keep-alive\r\n\r\n",
        200,
        False,
        True,
    ),
    Case("Connection: close", get(H + b"Connection: close\r\n"), 200, False, True),
    Case("POST with length", post(b"Content-Length: 5\r\n", b"hello"), 200, True, True),
    Case("POST chunked", post(CHUNKED, b"5\r\nhello\r\n0\r\n\r\n"), 200, True, True),
    Case("chunk extension", post(CHUNKED, b"5;a=b\r\nhello\r\n0\r\n\r\n"), 200, True, True),
    Case("chunked trailer", post(CHUNKED, b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"), 200, True, True),
    Case("absolute-form target", get(b"Host: other\r\n", b"GET http://hello.localhost/x HTTP/1.1"), 200, True, True),
    Case("exactly 100 headers", get(H + MANY[: -len(b"X-H99: v\r\n")]), 200, True, True),
    Case("target of exactly 8 KiB", get(H, target(LIMIT_TARGET)), 200, True, True),
    Case("header block of exactly 16 KiB", get(headers_of(LIMIT_HEADERS)), 200, True, True),
    Case("underscore in a header name", get(H + b"X_Roost_Cron: tick\r\nMy_Header: 1\r\n"), 200, True, True),
    Case("body at the limit", post(b"Content-Length: %d\r\n" % LIMIT_BODY, b"x" * LIMIT_BODY), 200, True, True),
    Case("unknown app", get(b"Host: nope.localhost\r\n"), 404, True, True),
    Case("unknown domain", get(b"Host: example.org\r\n"), 404, True, True),
    Case("private path", get(H, b"GET /_roost/cron HTTP/1.1"), 404, True, True),
    Case("private path, encoded", get(H, b"GET /_roost/%63ron?x HTTP/1.1"), 404, True, True),
    Case("private path, dot segments", get(H, b"GET /a/../_roost//cron HTTP/1.1"), 404, True, True),
    Case("stopped app", get(b"Host: sleepy.localhost\r\n"), 503, True, True),
    Case("HTTP/1.0 without Host", get(b"", b"GET / HTTP/1.0"), 404, False, True),
    # smuggling: framing
    # h11 lets chunked win over Content-Length and merges equal lengths (RFC 9112 allows both);
    # a proxy must not: the app behind may frame it the other way. We reject.
    Case("Content-Length and chunked", post(b"Content-Length: 5\r\n" + CHUNKED, b"0\r\n\r\n"), 400, False, True),
    Case("chunked and Content-Length", post(CHUNKED + b"Content-Length: 5\r\n", b"0\r\n\r\n"), 400, False, True),
    Case("two Content-Length", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), 400, False, True),
    Case("Content-Length list", post(b"Content-Length: 5, 5\r\n", b"hello"), 400, False, True),
    Case("Content-Length not a number", post(b"Content-Length: 5x\r\n", b"hello"), 400, False, False),
    Case("Content-Length negative", post(b"Content-Length: -1\r\n"), 400, False, False),
    Case("Content-Length with plus", post(b"Content-Length: +5\r\n", b"hello"), 400, False, False),
    Case("Content-Length overflow", post(b"Content-Length: 99999999999999999999999\r\n"), 400, False, False),
    Case("Transfer-Encoding gzip", post(b"Transfer-Encoding: gzip\r\n", b"x"), 400, False, False),
    Case(
        "Transfer-Encoding gzip, chunked",
        post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
        400,
        False,
        False,
    ),
    Case("chunked, chunked", post(CHUNKED + CHUNKED, b"0\r\n\r\n"), 400, False, False),
    Case("Transfer-Encoding ,chunked", post(b"Transfer-Encoding: ,chunked\r\n", b"0\r\n\r\n"), 400, False, False),
    Case("Transfer-Encoding identity", post(b"Transfer-Encoding: identity\r\n"), 400, False, False),
    Case("chunked in HTTP/1.0", b"POST /echo HTTP/1.0\r\n" + H + CHUNKED + b"\r\n0\r\n\r\n", 400, False, True),
    # smuggling: header syntax
    Case("obs-fold", get(H + b"X-A: b\r\n c\r\n"), 400, False, True),  # h11 unfolds; RFC 9112 lets us reject
    Case("space before colon", get(H + b"X-A : b\r\n"), 400, False, False),
    Case("tab before colon", get(H + b"X-A\t: b\r\n"), 400, False, False),
    Case("Content-Length with tab before colon", post(b"Content-Length\t: 5\r\n", b"hello"), 400, False, False),
    Case("Transfer-Encoding with space before colon", post(b"Transfer-Encoding : chunked\r\n"), 400, False, False),
    Case("bad header name", get(H + b"X(A): b\r\n"), 400, False, False),
    Case("empty header name", get(H + b": b\r\n"), 400, False, False),
    Case("control char in value", get(H + b"X-A: b\x01c\r\n"), 400, False, True),  # h11 is lenient
    Case("NUL in value", get(H + b"X-A: b\x00c\r\n"), 400, False, False),
    Case("bare LF", b"GET / HTTP/1.1\nHost: hello.localhost\n\n", 400, False, True),  # h11 is lenient here
    Case("bare LF in a header", get(H + b"X-A: b\nX-B: c\r\n"), 400, False, True),
    Case("bare CR", b"GET / HTTP/1.1\rHost: hello.localhost\r\n\r\n", 400, False, False),
    Case("bare CR in a value", get(H + b"X-A: b\rc\r\n"), 400, False, False),
    Case("no Host", get(), 400, False, False),
    Case("two Hosts", get(H + H), 400, False, False),
    Case("Host with a space", get(b"Host: hello.localhost evil\r\n"), 400, False, True),  # h11 skips Host syntax
    # smuggling: chunked bodies
    Case("bad chunk size", post(CHUNKED, b"zz\r\nhello\r\n0\r\n\r\n"), 400, False, False),
    Case("chunk size 0x", post(CHUNKED, b"0x5\r\nhello\r\n0\r\n\r\n"), 400, False, False),
    Case("chunk size overflow", post(CHUNKED, b"fffffffffffffffffff\r\nx\r\n"), 400, False, True),  # h11 waits
    Case("chunk size with space", post(CHUNKED, b"5 \r\nhello\r\n0\r\n\r\n"), 400, False, True),  # h11: BWS
    Case("bad chunk extension", post(CHUNKED, b'5;a="\x01"\r\nhello\r\n0\r\n\r\n'), 400, False, True),  # h11 skips
    Case("chunk without CRLF", post(CHUNKED, b"5\r\nhelloX0\r\n\r\n"), 400, False, False),
    Case("chunk with bare LF", post(CHUNKED, b"5\nhello\n0\n\n"), 400, False, True),  # h11 waits for CRLF
    # request line
    Case("HTTP/2.0", get(H, b"GET / HTTP/2.0"), 505, False, True),  # h11 does not check the major version
    Case("HTTP/1.2", get(H, b"GET / HTTP/1.2"), 400, False, True),  # h11 takes any 1.x
    Case("HTTP/0.9", b"GET /\r\n\r\n", 400, False, False),
    Case("lower-case method", get(H, b"get / HTTP/1.1"), 400, False, True),  # h11: any token
    Case("unknown method", get(H, b"FROB / HTTP/1.1"), 400, False, True),
    Case("CONNECT", get(H, b"CONNECT hello.localhost:443 HTTP/1.1"), 405, False, True),  # policy
    Case("TRACE", get(H, b"TRACE / HTTP/1.1"), 405, False, True),  # policy: no cross-site tracing
    Case("control char in target", get(H, b"GET /a\x01b HTTP/1.1"), 400, False, False),
    Case("space in target", get(H, b"GET /a b HTTP/1.1"), 400, False, False),
    # sizes and limits
    Case("request line over 8 KiB", get(H, b"GET /" + b"a" * 8200 + b" HTTP/1.1"), 414, False, True),
    Case("target one byte over 8 KiB", get(H, target(LIMIT_TARGET + 1)), 414, False, True),
    Case("header block one byte over 16 KiB", get(headers_of(LIMIT_HEADERS + 1)), 431, False, True),
    Case("101 headers", get(H + MANY), 431, False, True),
    Case("headers over 16 KiB", get(H + BIG), 431, False, True),  # h11 limits only what it buffers
    Case("one header over 16 KiB", get(H + b"X-A: " + b"v" * 17000 + b"\r\n"), 431, False, True),
    Case("body over the limit", post(b"Content-Length: %d\r\n" % (LIMIT_BODY + 1)), 413, False, True),
    Case(
        "chunked body over the limit",
        post(CHUNKED, b"%x\r\n" % (LIMIT_BODY + 1) + b"x" * (LIMIT_BODY + 1)),
        413,
        False,
        True,
    ),
    Case("Expect: other", post(b"Content-Length: 1\r\nExpect: magic\r\n", b"x"), 417, False, True),
    Case(
        "Upgrade with a body",
        post(b"Connection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 1\r\n", b"x"),
        400,
        False,
        True,
    ),
]


def h11_accepts(raw: bytes) -> bool:
    """Does h11, as a server, read a request head (and what body came) from `raw` without a protocol error?"""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    head = False
    try:
        while True:
            event = conn.next_event()
            head = head or isinstance(event, h11.Request)
            if event is h11.PAUSED or isinstance(event, h11.EndOfMessage):
                return True
            if event is h11.NEED_DATA:
                return head
    except h11.RemoteProtocolError:
        return False


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_request_table(case: Case, edge: Running) -> None:
    assert h11_accepts(case.raw) is case.h11_accepts
    async with edge.client() as client:
        await client.send(case.raw)
        response = await client.response(case.method)
        assert response.status == case.status, response.text
        assert response.headers["x-request-id"]
        if case.status >= 400:
            assert response.headers["content-type"].startswith("text/plain")
            assert response.headers["x-request-id"] in response.text
            assert "uvicorn" not in response.text.lower()
        if case.stays_open:
            again = await client.request("GET", "/", "hello.localhost")
            assert again.status == 200
        else:
            assert await client.is_closed()
    assert edge.runtime.acquired == edge.runtime.released


# A framing error, then a second request in the same packet: the classic smuggling shape. The
# edge must answer the first with one 400 and close; the second must never reach the app.
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: hello.localhost\r\n\r\n"
SMUGGLING = [
    ("CL.TE", post(b"Content-Length: 6\r\n" + CHUNKED, b"0\r\n\r\n") + SMUGGLED),
    ("TE.CL", post(CHUNKED + b"Content-Length: 4\r\n", b"5c\r\n") + SMUGGLED),
    ("two Content-Length", post(b"Content-Length: 0\r\nContent-Length: 51\r\n") + SMUGGLED),
    (
        "Transfer-Encoding obfuscated",
        post(b"Content-Length: 4\r\nTransfer-Encoding: xchunked\r\n", b"0\r\n\r\n") + SMUGGLED,
    ),
    ("Transfer-Encoding folded", post(b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n") + SMUGGLED),
    ("space before colon", post(b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n") + SMUGGLED),
    ("bad chunk size", post(CHUNKED, b"5g\r\nhello\r\n0\r\n\r\n") + SMUGGLED),
    ("chunk longer than its size", post(CHUNKED, b"2\r\nhello\r\n0\r\n\r\n") + SMUGGLED),
    ("bare LF ends the chunked body", post(CHUNKED, b"0\n\n") + SMUGGLED),
]


@pytest.mark.parametrize(("name", "raw"), SMUGGLING, ids=[name for name, _ in SMUGGLING])
async def test_a_request_smuggled_after_a_framing_error_never_reaches_the_app(name: str, raw: bytes) -> None:
    received: list[bytes] = []
    connections = [0, 0]  # opened, ended

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Records every byte; answers only the control request."""
        connections[0] += 1
        try:
            while data := await reader.read(65536):
                received.append(data)
                if data.startswith(b"GET /control "):
                    writer.write(answer(b"ok"))
        finally:
            connections[1] += 1

    async with raw_server(upstream) as address:
        runtime = LoopbackRuntime()
        dep = runtime.add("dep00001", Plan([address]))
        async with running_edge(runtime, table(route("hello", [(dep, 100)]))) as edge, edge.client() as client:
            await client.send(raw)
            response = await client.response("POST")
            assert response.status == 400, response.text
            assert await client.rest() == b""  # exactly one response, then the close
            async with edge.client() as control:  # the recording works: a plain request is seen
                assert (await control.request("GET", "/control", "hello.localhost")).status == 200
        await until(lambda: connections[0] == connections[1])  # the edge closed its pool: all read
    seen = b"".join(received)
    assert b"GET /control " in seen
    assert b"smuggled" not in seen
    assert runtime.acquired == runtime.released
