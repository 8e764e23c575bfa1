"""Who is the client: one table, answered alike by the admin API's rule and the edge's connections."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from roost.clientaddr import client_address, client_key, is_localhost, is_trusted, parse_networks
from roost.edge.activator import Activator
from roost.edge.client import ClientConnection
from roost.edge.context import EdgeContext
from roost.edge.edge_settings import EdgeSettings
from roost.edge.request import Request
from tests.unit.edge.harness import LoopbackRuntime, until

PROXY, STRANGER = "127.0.0.5", "127.0.0.9"  # loopback addresses a test client can connect from
CIDRS = ("10.0.0.0/8", f"{PROXY}/32", "2001:db8:1::/48")
PROXIES = parse_networks(CIDRS)

TABLE = [
    (STRANGER, None, STRANGER),
    (STRANGER, "198.51.100.2", STRANGER),  # untrusted peer: the header is ignored
    (PROXY, None, PROXY),
    (PROXY, "198.51.100.2", "198.51.100.2"),
    (PROXY, "127.0.0.1, 198.51.100.2", "198.51.100.2"),  # right-most untrusted hop wins
    (PROXY, "203.0.113.9, 198.51.100.2, 10.2.2.2", "198.51.100.2"),  # trusted hops are skipped
    (PROXY, "10.3.3.3, 10.2.2.2", "10.3.3.3"),  # all trusted: the left-most
    (PROXY, " 10.3.3.3 ,, 10.2.2.2 ", "10.3.3.3"),
    (PROXY, "2001:db8:1::7, 10.2.2.2", "2001:db8:1::7"),  # all trusted, IPv6 among them
    (PROXY, "2001:db8:2::7", "2001:db8:2::7"),
    (PROXY, " , ", PROXY),  # no hop named: the peer
    (PROXY, "garbage", "garbage"),  # not an address, so not trusted: believed as named
]


@pytest.mark.parametrize(("peer", "header", "expected"), TABLE)
def test_the_admin_api_believes(peer: str, header: str | None, expected: str) -> None:
    assert client_address(peer, header, PROXIES) == expected


@asynccontextmanager
async def edge_connections(settings: EdgeSettings) -> AsyncIterator[tuple[str, int, list[ClientConnection]]]:
    """Real client connections of the edge's protocol, on a loopback listener."""
    loop = asyncio.get_running_loop()
    runtime = LoopbackRuntime()
    ctx = EdgeContext(settings, Activator(runtime, 1, 1.0), parse_networks(settings.trust_proxy), random.Random(0))  # noqa: S311 - a split, not a secret
    made: list[ClientConnection] = []

    def connection() -> ClientConnection:
        conn = ClientConnection(ctx, loop)
        made.append(conn)
        return conn

    server = await loop.create_server(connection, "127.0.0.1", 0)
    try:
        yield "127.0.0.1", server.sockets[0].getsockname()[1], made
    finally:
        server.close()
        for conn in made:
            conn.abort()
        await server.wait_closed()
        await runtime.close()


async def edge_believes(peer: str, header: str | None) -> str:
    """The client the edge charges a request from `peer` carrying `header` to (its rate key)."""
    async with edge_connections(EdgeSettings(trust_proxy=CIDRS)) as (host, port, made):
        sock = socket.socket()
        sock.bind((peer, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        try:
            await until(lambda: bool(made) and made[0].transport is not None)
            req = Request()
            if header is not None:
                req.add_header(b"X-Forwarded-For", header.encode())
            return made[0].rate_key(req)
        finally:
            sock.close()


@pytest.mark.parametrize(("peer", "header", "expected"), TABLE)
async def test_the_edge_believes(peer: str, header: str | None, expected: str) -> None:
    assert await edge_believes(peer, header) == client_key(expected)


def test_the_edge_counts_an_ipv6_client_per_64() -> None:
    assert client_key("2001:db8:2::7") == client_key("2001:db8:2::8") == "2001:db8:2::/64"
    assert client_key("::ffff:198.51.100.2") == "198.51.100.2"
    assert client_key("198.51.100.2") == "198.51.100.2"


def test_trust_ignores_brackets_spaces_and_zones() -> None:
    assert is_trusted(" [2001:db8:1::1] ", PROXIES)
    assert is_trusted("2001:db8:1::1%eth0", PROXIES)
    assert not is_trusted("2001:db8:2::1", PROXIES)
    assert not is_trusted("10.0.0.1", ())


def test_localhost_is_exact() -> None:
    assert is_localhost("127.0.0.1")
    assert is_localhost("::1")
    assert not is_localhost("127.0.0.3")
    assert not is_localhost("10.0.0.1")
    assert not is_localhost("not-an-ip")


def test_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match="'nope' is not a network"):
        parse_networks(["nope"])
