"""Forwarding: keep-alive and pooling, pipelining, HEAD, 100-continue, framing, headers in both directions."""

from __future__ import annotations

import asyncio
import json

from roost.edge import EdgeSettings
from tests.unit.edge.harness import (
    LoopbackRuntime,
    Plan,
    Running,
    answer,
    raw_server,
    read_request,
    route,
    running_edge,
    table,
)


async def test_keep_alive_reuses_one_upstream_connection() -> None:
    connections = 0

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            head, _, _ = await read_request(reader)
            writer.write(answer(head.split(b" ")[1]))

    async with raw_server(upstream) as address:
        runtime = LoopbackRuntime()
        dep = runtime.add("dep00001", Plan([address]))
        async with running_edge(runtime, table(route("hello", [(dep, 100)]))) as edge, edge.client() as client:
            for i in range(50):
                response = await client.request("GET", f"/n{i}", "hello.localhost")
                assert (response.status, response.body) == (200, f"/n{i}".encode())
    assert connections == 1
    assert runtime.acquired == runtime.released == 50


async def test_pipelined_requests_are_answered_in_order(edge: Running) -> None:
    async with edge.client() as client:
        await client.send(
            b"GET /sleep?s=0.2 HTTP/1.1\r\nHost: hello.localhost\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /third HTTP/1.1\r\nHost: hello.localhost\r\n\r\n"
            b"GET / HTTP/1.1\r\nHost: nope.localhost\r\n\r\n"
            b"GET /fifth HTTP/1.1\r\nHost: hello.localhost\r\n\r\n"
        )
        bodies = [(await client.response()).body for _ in range(5)]
    assert bodies[0] == b"slept"
    assert bodies[1] == b"abc"
    assert bodies[2].startswith(b"hello from a GET /third")
    assert bodies[3].startswith(b"404 no such app")
    assert bodies[4].startswith(b"hello from a GET /fifth")


async def test_head_has_no_body_and_the_connections_stay_usable(edge: Running) -> None:
    async with edge.client() as client:
        for _ in range(3):
            head = await client.request("HEAD", "/x", "hello.localhost")
            assert head.status == 200
            assert head.body == b""
            assert head.headers["content-length"] == str(len("hello from a HEAD /x 0"))
            got = await client.request("GET", "/x", "hello.localhost")
            assert got.body == b"hello from a GET /x 0"
        missing = await client.request("HEAD", "/", "nope.localhost")
        assert (missing.status, missing.body) == (404, b"")


async def test_expect_100_continue(edge: Running) -> None:
    async with edge.client() as client:
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert client.reader is not None
        interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await client.send(b"hello")
        response = await client.response("POST")
        assert (response.status, response.body) == (200, b"hello")
        refused = b"POST /echo HTTP/1.1\r\nHost: nope.localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        await client.send(refused)
        response = await client.response("POST")
        assert response.status == 404
        assert response.informational == []  # no 100 before a refusal
        assert await client.is_closed()  # the body never came: the connection cannot be reused


async def test_chunked_both_ways_and_lengths_pass_through(edge: Running) -> None:
    async with edge.client() as client:
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: hello.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        )
        streamed = await client.response("POST")
        assert streamed.body == b"abcdefg"
        assert streamed.headers["transfer-encoding"] == "chunked"
        fixed = await client.request("GET", "/", "hello.localhost")
        assert fixed.headers["content-length"] == str(len(fixed.body))
        assert "transfer-encoding" not in fixed.headers


async def seen_by_app(
    client_edge: Running, headers: dict[str, str], host: str = "hello.localhost", path: str = "/headers"
) -> dict[str, object]:
    async with client_edge.client() as client:
        response = await client.request("GET", path, host, headers)
        assert response.status == 200, response.text
        data: dict[str, object] = json.loads(response.body)
        data["response_request_id"] = response.headers["x-request-id"]
        return data


SPOOFED = {
    "X-Forwarded-For": "6.6.6.6",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Prefix": "/evil",
    "X-Request-Id": "trusted-looking-id",
    "Forwarded": "for=6.6.6.6",
    "X-Real-IP": "6.6.6.6",
    "X-Roost-Cron": "1",
    "Connection": "keep-alive, X-Drop-Me",
    "X-Drop-Me": "1",
    "Keep-Alive": "timeout=1",
    "TE": "trailers",
    "Trailer": "X-T",
    "Proxy-Authorization": "Basic eA==",
    "Upgrade": "websocket",
    "X-Kept": "yes",
}


async def test_forwarded_headers_from_an_untrusted_client_are_replaced(edge: Running) -> None:
    data = await seen_by_app(edge, SPOOFED)
    seen = data["headers"]
    assert isinstance(seen, dict)
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "hello.localhost"
    assert seen["x-request-id"] == data["response_request_id"] != "trusted-looking-id"
    assert seen["host"] == "hello.localhost"
    assert seen["x-kept"] == "yes"
    for gone in ("x-forwarded-prefix", "forwarded", "x-real-ip", "x-roost-cron", "x-drop-me", "keep-alive", "te"):
        assert gone not in seen, gone
    for gone in ("trailer", "proxy-authorization", "upgrade", "connection"):
        assert gone not in seen, gone


async def test_forwarded_headers_from_a_trusted_proxy_are_kept_and_appended(hello: tuple[str, int]) -> None:
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello]))
    settings = EdgeSettings(trust_proxy=("127.0.0.0/8",))
    async with running_edge(runtime, table(route("hello", [(dep, 100)])), settings) as edge:
        data = await seen_by_app(edge, SPOOFED)
        seen = data["headers"]
        assert isinstance(seen, dict)
        assert seen["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"
        assert seen["x-forwarded-proto"] == "https"
        assert seen["x-forwarded-host"] == "evil.example"
        assert seen["x-request-id"] == data["response_request_id"] == "trusted-looking-id"
        assert seen["forwarded"] == "for=6.6.6.6"
        assert "x-roost-cron" not in seen  # never, whoever sends it
        assert "x-forwarded-prefix" not in seen
        insane = await seen_by_app(edge, {"X-Request-Id": "bad id\twith spaces"})
        assert insane["response_request_id"] != "bad id\twith spaces"


UNDERSCORED = {
    "X_Roost_Cron": "tick",  # a WSGI server would read it as HTTP_X_ROOST_CRON
    "X_Forwarded_For": "6.6.6.6",
    "x_forwarded_host": "evil.example",
    "X_Request_Id": "trusted-looking-id",
    "Content_Length": "5",
    "Transfer_Encoding": "chunked",
    "My_Header": "1",
    "X-Kept": "yes",
}


async def test_header_names_with_an_underscore_never_reach_the_app(edge: Running) -> None:
    """nginx's `underscores_in_headers off`: such names are dropped, the request is served."""
    data = await seen_by_app(edge, UNDERSCORED)
    seen = data["headers"]
    assert isinstance(seen, dict)
    assert [name for name in seen if "_" in name] == []
    assert seen["x-kept"] == "yes"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-host"] == "hello.localhost"
    assert seen["x-request-id"] == data["response_request_id"] != "trusted-looking-id"
    assert data["body"] == 0


async def test_path_route_strips_the_prefix_and_says_so(edge: Running) -> None:
    data = await seen_by_app(edge, {"X-Forwarded-Prefix": "/evil"}, host="localhost", path="/hello/headers?x=1")
    seen = data["headers"]
    assert isinstance(seen, dict)
    assert data["path"] == "/headers"
    assert seen["x-forwarded-prefix"] == "/hello"


async def test_response_hop_by_hop_headers_are_removed(edge: Running) -> None:
    async with edge.client() as client:
        response = await client.request("GET", "/hop", "hello.localhost")
    assert response.body == b"hop"
    assert "x-secret" not in response.headers
    assert "keep-alive" not in response.headers
    assert response.headers["server"] == "roost"
    assert response.headers["x-request-id"] != "from-app"
    assert response.headers["x-roost-start"] == "hot"


async def test_new_routes_apply_to_open_connections(edge: Running) -> None:
    routes = edge.edge.routes
    async with edge.client() as client:
        assert (await client.request("GET", "/", "hello.localhost")).status == 200
        edge.edge.update_routes(table(domain="localhost"))
        assert (await client.request("GET", "/", "hello.localhost")).status == 404
        edge.edge.update_routes(routes)
        assert (await client.request("GET", "/", "hello.localhost")).status == 200


async def test_counters_count_by_class_and_latency(edge: Running) -> None:
    async with edge.client() as client:
        for status in (200, 200, 302, 404, 500):
            response = await client.request("GET", f"/?status={status}", "hello.localhost")
            assert response.status == status
    counters = edge.edge.counters(edge.runtime.ready(next(iter(edge.runtime.plans)))[0].deployment)
    assert (counters.requests_2xx, counters.requests_3xx, counters.requests_4xx, counters.requests_5xx) == (2, 1, 1, 1)
    assert sum(counters.latency) == counters.requests == 5
    assert counters.in_flight == counters.queued == 0
    assert counters.last_request_at is not None
    assert set(edge.edge.all_counters()) == {counters.deployment}


async def test_the_upstream_gets_framing_the_edge_wrote_itself() -> None:
    """Chunk extensions, a trailer, `Chunked` in odd case and a zero-padded length: none of the
    client's framing bytes reach the app, only the edge's own."""
    received: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if b"transfer-encoding: chunked" in head.lower():
                body = await reader.readuntil(b"\r\n0\r\n\r\n")
            else:
                body = await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
            received.append(head + body)
            writer.write(answer(b"ok"))

    async with raw_server(upstream) as address:
        runtime = LoopbackRuntime()
        dep = runtime.add("dep00001", Plan([address]))
        async with running_edge(runtime, table(route("hello", [(dep, 100)]))) as edge, edge.client() as client:
            await client.send(
                b"POST /a HTTP/1.1\r\nHost: hello.localhost\r\nTransfer-Encoding: Chunked\r\n\r\n"
                b'5;name=value;quoted="x y"\r\nhello\r\n6;ext\r\n world\r\n0;last=1\r\nX-Trailer: t\r\n\r\n'
            )
            assert (await client.response("POST")).status == 200
            await client.send(b"POST /b HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 005\r\n\r\nhello")
            assert (await client.response("POST")).status == 200
    chunked, fixed = received
    head, body = chunked.split(b"\r\n\r\n", 1)
    assert b"\r\nTransfer-Encoding: chunked\r\n" in head + b"\r\n"
    assert b"Chunked" not in head
    assert b"X-Trailer" not in chunked
    assert body == b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"  # no extension, no trailer: our own chunks
    assert b"\r\nContent-Length: 5\r\n" in fixed
    assert b"005" not in fixed
    assert fixed.endswith(b"\r\n\r\nhello")
