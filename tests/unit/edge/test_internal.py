"""The internal door (Roost's own requests: cron): private paths open, X-Roost-Cron kept, and the
production deployment serves whatever the traffic split says."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from roost.edge import Edge
from roost.model import AppName
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

PRIVATE = "/_roost/cron"


@contextlib.asynccontextmanager
async def recording() -> AsyncIterator[tuple[tuple[str, int], list[bytes]]]:
    """An upstream that answers 200 to every request and keeps each request head."""
    heads: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _, _ = await read_request(reader)
            heads.append(head)
            writer.write(answer(b"ok"))

    async with raw_server(upstream) as address:
        yield address, heads


@contextlib.asynccontextmanager
async def internal_door(edge: Edge) -> AsyncIterator[None]:
    with tempfile.TemporaryDirectory(prefix="roost-") as home:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(Path(home) / "internal.sock"))
        sock.listen(16)
        sock.setblocking(False)
        try:
            await edge.start_internal(sock)
            yield
        finally:
            sock.close()


async def test_cron_requests_go_to_production_whatever_the_split_says() -> None:
    async with recording() as (side, side_heads), recording() as (production, production_heads):
        runtime = LoopbackRuntime()
        other = runtime.add("dep0000b", Plan([side]))
        main = runtime.add("dep0000a", Plan([production]))
        routes = table(route("hello", [(other, 40), (main, 60)], private=frozenset({PRIVATE})))
        async with running_edge(runtime, routes) as edge, internal_door(edge.edge):
            for _ in range(20):
                status, start = await edge.edge.internal_request(
                    AppName("hello"), "POST", PRIVATE, {"x-roost-cron": "nightly"}
                )
                assert (status, start) == (200, "hot")
            assert (edge.edge.counters(main).requests, edge.edge.counters(other).requests) == (20, 0)
            assert side_heads == []
            await outside_requests_are_split(edge)
    assert len(side_heads) > 0  # the split itself still works
    for head in production_heads[:20]:
        lower = head.lower()
        assert lower.startswith(b"post /_roost/cron http/1.1\r\n")
        assert b"\r\nx-roost-cron: nightly\r\n" in lower
        assert b"\r\nhost: hello.localhost\r\n" in lower  # the production host, not a preview
        assert b"x-roost-deployment" not in lower  # the edge's own instruction, never forwarded


async def outside_requests_are_split(edge: Running) -> None:
    """From outside (no cookie: each request a new client) the split applies, and the header that
    pins a deployment on the internal door is dropped like every X-Roost-* header."""
    for _ in range(20):
        async with edge.client() as client:
            response = await client.request("GET", "/", "hello.localhost", {"X-Roost-Deployment": "dep0000a"})
            assert response.status == 200


async def test_a_private_path_is_refused_outside_and_reached_inside() -> None:
    async with recording() as (production, heads):
        runtime = LoopbackRuntime()
        main = runtime.add("dep0000a", Plan([production]))
        routes = table(route("hello", [(main, 100)], private=frozenset({PRIVATE})))
        async with running_edge(runtime, routes) as edge, internal_door(edge.edge):
            async with edge.client() as client:
                response = await client.request("POST", PRIVATE, "hello.localhost", {"X-Roost-Cron": "forged"})
                assert response.status == 404
            status, _ = await edge.edge.internal_request(AppName("hello"), "POST", PRIVATE, {"x-roost-cron": "job"})
            assert status == 200
    assert len(heads) == 1
    assert b"\r\nx-roost-cron: job\r\n" in heads[0].lower()
