"""Starting and closing the edge: in-flight answers finish, then the rest is cut; slots always come back."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from roost.edge import Edge, EdgeSettings
from roost.errors import ConfigError
from tests.unit.edge.harness import LoopbackRuntime, Plan, RawClient, listening_socket, route, table, until


async def start(hello: tuple[str, int]) -> tuple[Edge, LoopbackRuntime, int]:
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello]))
    edge = Edge(runtime, EdgeSettings(), rng=random.Random(1))  # noqa: S311 - a seeded split
    edge.update_routes(table(route("hello", [(dep, 100)], timeout=30)))
    sock = listening_socket()
    await edge.start(sock)
    return edge, runtime, sock.getsockname()[1]


async def test_close_lets_in_flight_answers_finish_and_closes_idle_connections(hello: tuple[str, int]) -> None:
    edge, runtime, port = await start(hello)
    busy, idle = RawClient("127.0.0.1", port), RawClient("127.0.0.1", port)
    await busy.connect()
    await idle.connect()
    try:
        assert (await idle.request("GET", "/", "hello.localhost")).status == 200
        await busy.send(b"GET /sleep?s=0.3 HTTP/1.1\r\nHost: hello.localhost\r\n\r\n")
        await until(lambda: runtime.acquired == 2)
        closing = asyncio.create_task(edge.close(5.0))
        assert await idle.is_closed()
        response = await busy.response()
        assert (response.status, response.body) == (200, b"slept")
        assert response.headers.get("connection") == "close"
        await closing
        with pytest.raises(OSError):
            await RawClient("127.0.0.1", port).connect()
    finally:
        await busy.close()
        await idle.close()
        await runtime.close()
    assert runtime.acquired == runtime.released == 2


async def test_close_cuts_what_outlives_the_grace(hello: tuple[str, int]) -> None:
    edge, runtime, port = await start(hello)
    async with RawClient("127.0.0.1", port) as client:
        await client.send(b"GET /sleep?s=5 HTTP/1.1\r\nHost: hello.localhost\r\n\r\n")
        await until(lambda: runtime.acquired == 1)
        started = time.monotonic()
        await edge.close(0.2)
        assert time.monotonic() - started < 2
        assert await client.is_closed()
    await runtime.close()
    assert runtime.released == 1


def test_a_bad_trusted_network_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a network"):
        Edge(LoopbackRuntime(), EdgeSettings(trust_proxy=("10.0.0.0/33",)))
