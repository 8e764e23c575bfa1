"""Which limit times which part of a request: the client's body (408), the app's head (504 and a
recycle), the answer's stream (idle and maximum, cut without a recycle), and tunnels (none)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time

from roost.edge import EdgeSettings, RouteTable
from tests.unit.edge.harness import (
    Handler,
    LoopbackRuntime,
    Plan,
    RawClient,
    answer,
    raw_server,
    read_head,
    read_request,
    route,
    running_edge,
    table,
    until,
)

TIMEOUT = 0.3  # limits.timeout of the app in these tests: every stream below outlives it
TICK = 0.05


def one_app(
    address: tuple[str, int], stream_idle: float = 60.0, stream_max: float = 3600.0
) -> tuple[LoopbackRuntime, RouteTable]:
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([address]))
    app = dataclasses.replace(
        route("hello", [(dep, 100)], timeout=TIMEOUT),
        timeout_stream_idle=stream_idle,
        timeout_stream=stream_max,
        body_too_large="request body larger than the app's limit of 10 MB (limits.body = 10M in roost.toml)",
    )
    return runtime, table(app)


def ticker(ticks: int, then_stall: float = 0.0) -> tuple[list[bool], Handler]:
    """An SSE-like upstream: a chunked head, `ticks` events TICK apart, then (optionally) silence
    for `then_stall` seconds, then the end. `closed[0]` says whether the edge hung up on it."""
    closed = [False]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for n in range(ticks):
            event = b"data: %d\n\n" % n
            writer.write(b"%x\r\n%b\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(TICK)
        if then_stall and await hung_up(reader, then_stall):
            closed[0] = True
            return
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    return closed, serve


async def hung_up(reader: asyncio.StreamReader, within: float) -> bool:
    """Did the edge close the connection within `within` seconds (the app stays silent meanwhile)?"""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            return await reader.read(1) == b""
    return False


async def read_some(client: RawClient, until_text: bytes) -> bytes:
    assert client.reader is not None
    seen = b""
    while until_text not in seen:
        more = await client.reader.read(65536)
        assert more, f"closed early after {seen!r}"
        seen += more
    return seen


async def test_a_ticking_stream_runs_past_the_timeout_to_its_end() -> None:
    ticks = int(4 * TIMEOUT / TICK)  # four times limits.timeout
    _, serve = ticker(ticks)
    async with raw_server(serve) as address:
        runtime, routes = one_app(address, stream_idle=2.0)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            started = time.monotonic()
            response = await client.request("GET", "/events", "hello.localhost")
            assert response.status == 200
            assert response.body.count(b"data: ") == ticks
            assert time.monotonic() - started > 2 * TIMEOUT
        assert edge.recycled == []
        await until(lambda: runtime.acquired == runtime.released == 1)


async def test_a_stalled_stream_is_cut_at_the_idle_limit_without_a_recycle() -> None:
    closed, serve = ticker(3, then_stall=30)
    async with raw_server(serve) as address:
        runtime, routes = one_app(address, stream_idle=0.4)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            await client.send(b"GET /events HTTP/1.1\r\nHost: hello.localhost\r\n\r\n")
            await read_some(client, b"data: 2")
            stalled = time.monotonic()
            assert await client.is_closed()  # cut mid-stream: no last chunk, the connection ends
            assert time.monotonic() - stalled > 0.3  # cut by the idle limit, not before
            await until(lambda: closed[0])  # the app saw its client go, and can stop
            await until(lambda: runtime.acquired == runtime.released == 1)
            assert edge.recycled == []


async def test_a_stream_is_cut_at_its_maximum_duration_without_a_recycle() -> None:
    _, serve = ticker(10_000)  # endless for this test: a tick every 50 ms
    async with raw_server(serve) as address:
        runtime, routes = one_app(address, stream_idle=0.5, stream_max=1.0)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            started = time.monotonic()
            await client.send(b"GET /events HTTP/1.1\r\nHost: hello.localhost\r\n\r\n")
            assert await client.is_closed()
            assert time.monotonic() - started > 0.9  # cut by the maximum, not before
            await until(lambda: runtime.acquired == runtime.released == 1)
            assert edge.recycled == []


async def test_a_slow_body_holds_no_slot_and_the_app_gets_its_full_time_after_it() -> None:
    async def echo_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, _, body = await read_request(reader)
        await asyncio.sleep(TIMEOUT / 2)
        writer.write(answer(b"got %d" % len(body)))
        await writer.drain()

    async with raw_server(echo_length) as address:
        runtime, routes = one_app(address)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            await client.send(b"POST /form HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 8\r\n\r\n")
            for byte in b"trickled":  # eight bytes over about three times limits.timeout
                await asyncio.sleep(TIMEOUT * 3 / 8)
                assert runtime.acquired == 0  # still arriving: no slot taken for it
                await client.send(bytes([byte]))
            response = await client.response("POST")
            assert (response.status, response.body) == (200, b"got 8")
        assert edge.recycled == []
        assert runtime.acquired == runtime.released == 1


async def test_a_stalled_body_gets_a_408_and_holds_nothing() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with raw_server(never) as address:
        runtime, routes = one_app(address)
        async with running_edge(runtime, routes, EdgeSettings(timeout_body=0.3)) as edge, edge.client() as client:
            started = time.monotonic()
            await client.send(b"POST /form HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 8\r\n\r\nhalf")
            response = await client.response("POST")
            assert response.status == 408
            assert "did not arrive in time" in response.text
            assert time.monotonic() - started > 0.25
            assert await client.is_closed()
        assert runtime.acquired == 0
        assert edge.recycled == []


async def test_a_large_body_stalled_at_the_app_gets_a_408_and_no_recycle() -> None:
    """Past the read-ahead the body streams to the app; a client that stops then is still the client."""

    async def reads_all(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            await read_request(reader)

    async with raw_server(reads_all) as address:
        runtime, routes = one_app(address)
        settings = EdgeSettings(timeout_body=0.3, limit_body_buffer=1024)
        async with running_edge(runtime, routes, settings) as edge, edge.client() as client:
            await client.send(b"PUT /up HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 100000\r\n\r\n")
            await client.send(b"x" * 4096)
            await until(lambda: runtime.acquired == 1)  # forwarded: the app has the request
            response = await client.response("PUT")
            assert response.status == 408
            await until(lambda: runtime.released == 1)
        assert edge.recycled == []


async def test_the_body_limit_page_names_the_limit_and_the_setting() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with raw_server(never) as address:
        runtime, routes = one_app(address)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            too_big = 10 * 1024 * 1024 + 1
            await client.send(b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: %d\r\n\r\n" % too_big)
            response = await client.response("POST")
            assert response.status == 413
            assert response.text.startswith(
                "413 request body larger than the app's limit of 10 MB (limits.body = 10M in roost.toml)\n"
            )


async def test_a_websocket_tunnel_outlives_the_timeout() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async with raw_server(echo) as address:
        runtime, routes = one_app(address, stream_idle=TIMEOUT, stream_max=TIMEOUT)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            assert client.reader is not None
            await client.send(
                b"GET /ws HTTP/1.1\r\nHost: hello.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            )
            assert (await read_head(client.reader)).startswith(b"HTTP/1.1 101 ")
            for n in range(4):  # silent for longer than timeout, stream_idle and stream_max, each time
                await asyncio.sleep(TIMEOUT * 1.5)
                await client.send(b"ping %d" % n)
                assert await client.reader.readexactly(6) == b"ping %d" % n
            assert runtime.released == 0
        assert edge.recycled == []
