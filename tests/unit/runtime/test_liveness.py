"""Liveness: the pure failure count per instance, and one check against real sockets (an
asyncio server that answers, one that never answers, a port nobody listens on)."""

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from roost.model import HealthCheck
from roost.runtime.healthcheck import check_once
from roost.runtime.liveness import CheckRecord

CHECK = HealthCheck(path="/healthz", status=200, interval=10.0, timeout=1.0, failures=3)


def test_failures_in_a_row_reach_the_threshold() -> None:
    record = CheckRecord(due=0.0)
    assert not record.record(False, "answered 500", 1.0, CHECK)
    assert not record.record(False, "answered 500", 11.0, CHECK)
    assert record.record(False, "connection refused", 21.0, CHECK)
    assert record.failed == 3
    assert record.last == "connection refused"


def test_a_success_resets_the_count() -> None:
    record = CheckRecord(due=0.0)
    record.record(False, "x", 1.0, CHECK)
    record.record(False, "x", 2.0, CHECK)
    assert not record.record(True, "ok", 3.0, CHECK)
    assert record.failed == 0
    assert not record.record(False, "x", 4.0, CHECK)


def test_the_next_check_is_due_one_interval_after_the_last_and_never_while_one_runs() -> None:
    record = CheckRecord(due=5.0)
    assert not record.is_due(4.9)
    assert record.is_due(5.0)
    record.running = True
    assert not record.is_due(6.0)
    record.record(True, "ok", 6.0, CHECK)
    assert not record.running
    assert not record.is_due(15.9)
    assert record.is_due(16.0)


Server = Callable[[Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]], Awaitable[int]]


@pytest.fixture
async def serve() -> AsyncIterator[Server]:
    servers: list[asyncio.Server] = []

    async def start(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def answering(
    status: int, seen: list[bytes]
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    return handle


async def test_a_check_asks_the_path_and_judges_the_status(serve: Server) -> None:
    seen: list[bytes] = []
    healthy = await serve(answering(200, seen))
    sick = await serve(answering(503, seen))
    ok = await check_once("127.0.0.1", healthy, CHECK, 1.0)
    bad = await check_once("127.0.0.1", sick, CHECK, 1.0)
    assert (ok.ok, ok.status, ok.detail) == (True, 200, "GET /healthz answered HTTP 200")
    assert (bad.ok, bad.status) == (False, 503)
    assert bad.detail == "GET /healthz answered HTTP 503 (expected HTTP 200)"
    assert seen == [b"GET /healthz HTTP/1.1\r\n"] * 2


async def test_without_a_check_any_answer_on_root_passes(serve: Server) -> None:
    seen: list[bytes] = []
    port = await serve(answering(500, seen))
    outcome = await check_once("127.0.0.1", port, None, 1.0)
    assert outcome.ok
    assert seen == [b"GET / HTTP/1.1\r\n"]


async def test_a_silent_server_times_out_and_a_closed_port_is_refused(serve: Server) -> None:
    hold = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hold.wait()
        writer.close()

    port = await serve(silent)
    quiet = await check_once("127.0.0.1", port, CHECK, 0.3)
    hold.set()
    assert (quiet.ok, quiet.detail) == (False, "GET /healthz: no answer within 0.3s")
    with socket.socket() as sock:  # a port that was free a moment ago, nobody listening
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    refused = await check_once("127.0.0.1", closed, CHECK, 1.0)
    assert (refused.ok, refused.detail) == (False, "GET /healthz: connection refused")


async def test_an_endless_first_line_is_a_failed_check_not_a_crash(serve: Server) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.1 200 " + b"x" * 4096)
        await writer.drain()
        writer.close()

    port = await serve(endless)
    outcome = await check_once("127.0.0.1", port, CHECK, 1.0)
    assert (outcome.ok, outcome.detail) == (False, "GET /healthz: answered a first line longer than 1024 bytes")


async def test_something_that_is_not_http_fails_the_check(serve: Server) -> None:
    async def ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await writer.drain()
        writer.close()

    port = await serve(ssh)
    outcome = await check_once("127.0.0.1", port, CHECK, 1.0)
    assert not outcome.ok
    assert outcome.detail == "GET /healthz: answered something that is not HTTP: b'SSH-2.0-OpenSSH_9.2\\r\\n'"
