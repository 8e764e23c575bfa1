"""The edge in a cluster, on its own: answers from this machine's instances say which node
served them (X-Roost-Node, 101 upgrades too), an app cannot pretend to be another node, and
the region a trusted peer names (X-Roost-Region) reaches the runtime's capacity request."""

from __future__ import annotations

import asyncio

from roost.edge import EdgeSettings
from tests.unit.edge.harness import (
    LoopbackRuntime,
    Plan,
    answer,
    raw_server,
    read_head,
    route,
    running_edge,
    table,
)

NODE = "n1; region=eu"
GET = b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n"
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: hello.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def pretender(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An app that answers with X-Roost-Node and X-Roost-Start of its own (a 101 to an upgrade)."""
    head = await read_head(reader)
    if b"upgrade: websocket" in head.lower():
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
        writer.write(b"X-Roost-Node: evil\r\nX-Roost-Start: cold\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the edge closes the tunnel
        return
    writer.write(answer(b"hi", extra="X-Roost-Node: evil\r\nX-Roost-Start: cold\r\n"))
    await writer.drain()


async def head_for(request: bytes, settings: EdgeSettings) -> bytes:
    """The response head the client gets for `request` from an edge in front of `pretender`."""
    async with raw_server(pretender) as address:
        runtime = LoopbackRuntime()
        dep = runtime.add("dep00001", Plan([address]))
        routes = table(route("hello", [(dep, 100)]))
        async with running_edge(runtime, routes, settings) as edge, edge.client() as client:
            assert client.reader is not None
            await client.send(request)
            return await read_head(client.reader)


async def test_an_answer_from_an_instance_here_names_this_node_once() -> None:
    head = await head_for(GET, EdgeSettings(node=NODE))
    assert head.startswith(b"HTTP/1.1 200 ")
    assert head.count(b"X-Roost-Node: ") == 1 and b"\r\nX-Roost-Node: n1; region=eu\r\n" in head
    assert head.count(b"X-Roost-Start: ") == 1 and b"X-Roost-Start: hot\r\n" in head
    assert b"evil" not in head and b"cold" not in head


async def test_without_a_node_there_is_no_x_roost_node_not_even_the_apps() -> None:
    head = await head_for(GET, EdgeSettings())
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"x-roost-node" not in head.lower()


async def test_an_upgrade_names_this_node_too() -> None:
    head = await head_for(UPGRADE, EdgeSettings(node=NODE))
    assert head.startswith(b"HTTP/1.1 101 ")
    assert head.count(b"X-Roost-Node: ") == 1 and b"\r\nX-Roost-Node: n1; region=eu\r\n" in head
    assert head.count(b"X-Roost-Start: ") == 1 and b"evil" not in head


async def regions_asked(hello: tuple[str, int], settings: EdgeSettings, region: str) -> list[str]:
    """The regions of the capacity requests one request sent with X-Roost-Region: `region` makes
    (the deployment has no instance yet: it waits for a start)."""
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello]), ready=0)
    async with running_edge(runtime, table(route("hello", [(dep, 100)])), settings) as edge, edge.client() as client:
        response = await client.request("GET", "/", "hello.localhost", {"X-Roost-Region": region})
        assert (response.status, response.headers["x-roost-start"]) == (200, "warm")
    return runtime.regions_asked


async def test_a_trusted_peers_region_reaches_the_capacity_request(hello: tuple[str, int]) -> None:
    settings = EdgeSettings(region="us", trust_proxy=("127.0.0.0/8",))
    assert await regions_asked(hello, settings, "eu-west") == ["eu-west"]


async def test_a_clients_region_is_not_believed(hello: tuple[str, int]) -> None:
    assert await regions_asked(hello, EdgeSettings(region="us"), "eu-west") == ["us"]


async def test_without_a_region_the_edges_own_is_the_demands(hello: tuple[str, int]) -> None:
    settings = EdgeSettings(region="us", trust_proxy=("127.0.0.0/8",))
    assert await regions_asked(hello, settings, "not a region!") == ["us"]  # nonsense is no region
