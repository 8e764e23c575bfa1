"""Faults and defences: timeouts and recycling, dying and misbehaving apps, slowloris, floods."""

from __future__ import annotations

import asyncio
import time

import pytest

from roost.edge import EdgeSettings, RouteTable
from tests.unit.edge.harness import (
    LoopbackRuntime,
    Plan,
    RawClient,
    Running,
    answer,
    raw_server,
    read_request,
    refusing_address,
    route,
    running_edge,
    table,
    until,
)


def one_app(address: tuple[str, int], timeout: float = 5.0) -> tuple[LoopbackRuntime, RouteTable]:
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([address]))
    return runtime, table(route("hello", [(dep, 100)], timeout=timeout))


async def test_over_time_504_then_recycle_when_the_app_does_not_finish(hello: tuple[str, int]) -> None:
    runtime, routes = one_app(hello, timeout=0.3)
    settings = EdgeSettings(grace_recycle=0.3)
    async with running_edge(runtime, routes, settings) as edge:
        started = time.monotonic()
        async with edge.client() as client:
            response = await client.request("GET", "/sleep?s=5", "hello.localhost")
        assert response.status == 504
        assert time.monotonic() - started < 2
        await until(lambda: bool(edge.recycled))
        instance, reason = edge.recycled[0]
        assert instance == runtime.ready(next(iter(runtime.plans)))[0].id
        assert "time limit" in reason
        await until(lambda: runtime.acquired == runtime.released)


async def test_over_time_but_finishing_within_the_grace_is_not_recycled(hello: tuple[str, int]) -> None:
    runtime, routes = one_app(hello, timeout=0.2)
    async with running_edge(runtime, routes, EdgeSettings(grace_recycle=3)) as edge:
        async with edge.client() as client:
            assert (await client.request("GET", "/sleep?s=0.4", "hello.localhost")).status == 504
        await until(lambda: runtime.acquired == runtime.released)  # the slot came back when the app finished
        assert edge.recycled == []


async def test_an_app_that_dies_mid_request_is_a_502() -> None:
    connections = 0

    async def dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.transport.abort()

    async with raw_server(dies) as address:
        runtime, routes = one_app(address)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            response = await client.request("GET", "/", "hello.localhost")
            assert response.status == 502
            assert connections == 1  # the app read the request on a fresh connection: never run twice
            await client.send(b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 2\r\n\r\nhi")
            assert (await client.response("POST")).status == 502
            assert connections == 2
    assert runtime.acquired == runtime.released


@pytest.mark.parametrize(
    ("reason", "page"),
    [
        (
            "exited with status 1: Traceback (most recent call last): | File \"/srv/app/main.py\" | KeyError: 'pw'",
            "502 the app failed to answer\n",
        ),
        (  # the app prints the memory sentence itself: still not ours to show
            "exited with status 1: exceeded its memory limit of 1 MB | /srv/app",
            "502 the app failed to answer\n",
        ),
        (
            "exceeded its memory limit of 128 MB (killed by SIGKILL): MemoryError | /srv/app/main.py",
            "502 the app failed to answer: the instance exceeded its memory limit of 128 MB\n",
        ),
        (
            "crash-looping (3 crashes in a row): exceeded its memory limit of 256 MB (RSS 300 MB when polled) "
            "(killed by SIGKILL): big = 'hunter2' * 10**9",
            "502 the app failed to answer: the instance exceeded its memory limit of 256 MB\n",
        ),
    ],
)
async def test_a_crash_page_shows_only_a_fixed_sentence_or_the_memory_limit(reason: str, page: str) -> None:
    """The runtime's crash reason ends with the app's last output lines: never on the page."""
    runtime = LoopbackRuntime()

    async def crashes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        (instance,) = runtime.instances_of(dep)
        runtime.crash(instance.id, reason)  # the runtime tells the edge why before the socket breaks
        writer.transport.abort()

    async with raw_server(crashes) as address:
        dep = runtime.add("dep00001", Plan([address]))
        async with running_edge(runtime, table(route("hello", [(dep, 100)]))) as edge, edge.client() as client:
            response = await client.request("GET", "/", "hello.localhost")
    assert response.status == 502
    assert response.text == f"{page}request id: {response.headers['x-request-id']}\n"
    assert runtime.acquired == runtime.released


async def test_a_refused_connection_is_retried_once_on_another_instance(hello: tuple[str, int]) -> None:
    refusing, refused = refusing_address()
    try:
        runtime = LoopbackRuntime()
        dep = runtime.add("dep00001", Plan([refused, hello]), ready=2)
        first, second = runtime.instances_of(dep)
        assert (first.port, second.port) == (refused[1], hello[1])  # the least loaded on a tie: the refusing one
        async with running_edge(runtime, table(route("hello", [(dep, 100)]))) as edge, edge.client() as client:
            for _ in range(3):
                response = await client.request("GET", "/", "hello.localhost")
                assert (response.status, response.headers["x-instance"]) == (200, "a")
            assert runtime.acquired == 6  # each: the refusing instance, then the other
            await client.send(b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 2\r\n\r\nhi")
            assert (await client.response("POST")).status == 502  # not idempotent: never retried
            assert runtime.acquired == 7
    finally:
        refusing.close()
    assert runtime.acquired == runtime.released


async def test_a_stale_pooled_connection_is_retried_for_idempotent_requests() -> None:
    async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"ok"))  # says keep-alive...
        await writer.drain()
        await read_request(reader)  # ...but drops the next request unanswered
        writer.transport.abort()

    async with raw_server(one_per_connection) as address:
        runtime, routes = one_app(address)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            for _ in range(3):
                response = await client.request("GET", "/", "hello.localhost")
                assert (response.status, response.body) == (200, b"ok")


async def test_an_app_dying_after_its_head_cuts_the_client() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        writer.transport.abort()

    async with raw_server(half) as address:
        runtime, routes = one_app(address)
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            await client.send(b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n")
            assert client.reader is not None
            head = await client.reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert await client.is_closed()  # 10 of 100 bytes: the client must see a cut, not an end
    assert runtime.acquired == runtime.released


async def test_malformed_answers_and_answers_without_length() -> None:
    async def odd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _, _ = await read_request(reader)
        if b"/bad" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil the end")
            await writer.drain()
            writer.close()

    async with raw_server(odd) as address:
        runtime, routes = one_app(address)
        async with running_edge(runtime, routes) as edge:
            async with edge.client() as client:
                assert (await client.request("GET", "/bad", "hello.localhost")).status == 502
            async with edge.client() as client:
                response = await client.request("GET", "/eof", "hello.localhost")
                assert (response.status, response.body) == (200, b"until the end")
                assert response.headers["transfer-encoding"] == "chunked"
                assert (await client.request("GET", "/eof", "hello.localhost")).status == 200  # still open


async def test_slowloris_and_idle_connections_are_closed(edge: Running) -> None:
    settings = EdgeSettings(timeout_header=0.3, timeout_keepalive=0.3)
    async with running_edge(edge.runtime, edge.edge.routes, settings) as slow:
        async with slow.client() as client:
            await client.send(b"GET / HTTP/1.1\r\nHost: hel")
            started = time.monotonic()
            for _ in range(3):
                await asyncio.sleep(0.05)  # a byte now and then, as slowloris does
                await client.send(b"l")
            assert await client.is_closed()
            assert time.monotonic() - started < 2
        async with slow.client() as client:
            assert await client.is_closed()  # connected and said nothing
        async with slow.client() as client:
            assert (await client.request("GET", "/", "hello.localhost")).status == 200
            assert await client.is_closed()  # idle after the answer


async def test_a_flooding_address_is_limited_while_another_is_served(edge: Running) -> None:
    settings = EdgeSettings(rate_per_client=5, rate_burst=5, limit_connections_per_client=3)
    async with running_edge(edge.runtime, edge.edge.routes, settings) as limited:
        async with limited.client("127.0.0.2") as flood:
            statuses = [(await flood.request("GET", "/", "hello.localhost")).status for _ in range(10)]
            assert statuses[:5] == [200] * 5
            assert 429 in statuses[5:]
            refused = await flood.request("GET", "/", "hello.localhost")
            assert refused.status == 429
            assert int(refused.headers["retry-after"]) >= 1
            async with limited.client("127.0.0.3") as other:
                assert (await other.request("GET", "/", "hello.localhost")).status == 200
        clients = [RawClient(limited.host, limited.port, "127.0.0.4") for _ in range(4)]
        for client in clients:
            await client.connect()
        try:
            assert await clients[3].is_closed()  # the fourth connection from one address
            async with limited.client("127.0.0.5") as other:
                assert (await other.request("GET", "/", "hello.localhost")).status == 200
        finally:
            for client in clients:
                await client.close()


async def test_the_total_connection_limit_holds_across_addresses(edge: Running) -> None:
    settings = EdgeSettings(limit_connections=3, limit_connections_per_client=100)
    async with running_edge(edge.runtime, edge.edge.routes, settings) as limited:
        clients = [RawClient(limited.host, limited.port, f"127.0.0.{n}") for n in (2, 3, 4)]
        try:
            for client in clients:
                await client.connect()
                assert (await client.request("GET", "/", "hello.localhost")).status == 200  # admitted
            async with limited.client("127.0.0.5") as fourth:
                refused = await fourth.response()
                assert refused.status == 503
                assert refused.headers["retry-after"] == "1"
                assert await fourth.is_closed()
            assert limited.edge.connections == 3
            await clients[0].close()
            await until(lambda: limited.edge.connections == 2)  # a place came free
            async with limited.client("127.0.0.5") as fifth:
                assert (await fifth.request("GET", "/", "hello.localhost")).status == 200
        finally:
            for client in clients:
                await client.close()
