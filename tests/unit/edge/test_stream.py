"""Streaming in bounded memory both ways, and raw tunnels after a 101."""

from __future__ import annotations

import asyncio
import tracemalloc

from roost.edge import RouteTable
from tests.unit.edge.harness import (
    LoopbackRuntime,
    Plan,
    answer,
    raw_server,
    read_head,
    read_request,
    route,
    running_edge,
    table,
)

SIZE = 200 * 1024 * 1024
CHUNK = b"x" * 65536
LIMIT_MEMORY = 16 * 1024 * 1024  # what the edge, the app and the client may hold at once, together
STALL = 0.5  # a slow reader: without back-pressure the edge would buffer hundreds of megabytes meanwhile


def app_route(address: tuple[str, int]) -> tuple[LoopbackRuntime, RouteTable]:
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([address]))
    return runtime, table(route("hello", [(dep, 100)], timeout=120, body=SIZE))


async def test_a_large_upload_streams_in_bounded_memory() -> None:
    async def slow_sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await asyncio.sleep(STALL)
        seen = 0
        while seen < length:
            seen += len(await reader.read(1 << 20))
        writer.write(answer(str(seen).encode()))
        await writer.drain()

    async with raw_server(slow_sink) as address:
        runtime, routes = app_route(address)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            tracemalloc.start()
            try:
                await client.send(b"PUT /up HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: %d\r\n\r\n" % SIZE)
                for _ in range(SIZE // len(CHUNK)):
                    await client.send(CHUNK)
                response = await client.response("PUT")
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert (response.status, response.body) == (200, str(SIZE).encode())
            assert peak < LIMIT_MEMORY, f"peak {peak / 1e6:.1f} MB"


async def test_a_large_download_streams_in_bounded_memory() -> None:
    async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(SIZE // len(CHUNK)):
            writer.write(b"10000\r\n" + CHUNK + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with raw_server(source) as address:
        runtime, routes = app_route(address)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            assert client.reader is not None
            tracemalloc.start()
            try:
                await client.send(b"GET /down HTTP/1.1\r\nHost: hello.localhost\r\n\r\n")
                await asyncio.sleep(STALL)
                head = await read_head(client.reader)
                received = 0
                tail = b""
                while not tail.endswith(b"\r\n0\r\n\r\n"):
                    data = await client.reader.read(1 << 20)
                    assert data, "closed early"
                    received += len(data)
                    tail = (tail + data)[-16:]
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert received > SIZE  # the payload plus chunk framing
            assert peak < LIMIT_MEMORY, f"peak {peak / 1e6:.1f} MB"


async def test_echo_streams_both_ways_at_once() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length)
        seen = 0
        while seen < length:
            data = await reader.read(1 << 16)
            seen += len(data)
            writer.write(data)
            await writer.drain()

    size = 32 * 1024 * 1024
    async with raw_server(echo) as address:
        runtime, routes = app_route(address)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            assert client.reader is not None
            reader = client.reader

            async def upload() -> None:
                await client.send(b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: %d\r\n\r\n" % size)
                for _ in range(size // len(CHUNK)):
                    await client.send(CHUNK)

            async def download() -> int:
                await read_head(reader)
                got = 0
                while got < size:
                    got += len(await reader.read(1 << 20))
                return got

            _, got = await asyncio.gather(upload(), download())
            assert got == size
    assert runtime.acquired == runtime.released


async def websocket_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await read_head(reader)
    if b"upgrade: websocket" not in head.lower() or b"connection: upgrade" not in head.lower():
        writer.write(answer(b"not an upgrade", "400 Bad Request"))
        return
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
    writer.write(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: hello.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def test_websocket_tunnel_echoes_both_ways() -> None:
    async with raw_server(websocket_echo) as address:
        runtime, routes = app_route(address)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            assert client.reader is not None
            await client.send(UPGRADE + b"early frame")  # bytes before the 101 wait for the tunnel
            head = await read_head(client.reader)
            assert head.startswith(b"HTTP/1.1 101 ")
            assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
            assert b"X-Roost-Start: hot" in head
            assert await client.reader.readexactly(11) == b"early frame"
            payload = bytes(range(256)) * 4096  # 1 MiB through the tunnel, back-pressure included
            await client.send(payload)
            assert await client.reader.readexactly(len(payload)) == payload
            assert runtime.acquired == 1 and runtime.released == 0  # the tunnel holds its slot
        assert runtime.released == 1


async def test_a_refused_upgrade_is_forwarded_and_the_connection_closes() -> None:
    async def refuses(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(answer(b"no websockets here"))

    async with raw_server(refuses) as address:
        runtime, routes = app_route(address)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            await client.send(UPGRADE)
            response = await client.response()
            assert (response.status, response.body) == (200, b"no websockets here")
            assert "upgrade" not in response.headers
            assert await client.is_closed()
