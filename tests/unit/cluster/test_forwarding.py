"""Edges forwarding to edges, on real loopback sockets and without Ray: a node's public edge
(an `EdgeView` with no instance of its own) in front of another node's peer door (an `Edge`
over `LocalOnly`) and of the head's public edge, each in front of a real HTTP server, and httpx
as the client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from roost.cluster.contract import ClusterMap, Serving
from roost.cluster.edgeview import EdgeView, LocalOnly
from roost.edge import EdgeSettings, RouteTable
from roost.model import DeploymentId
from tests.unit.edge.harness import (
    LoopbackRuntime,
    Plan,
    Running,
    raw_server,
    read_head,
    refusing_address,
    route,
    running_edge,
    table,
    until,
    uvicorn_app,
)

TRUST_LOOPBACK = ("127.0.0.0/8",)  # the edges forward to each other over loopback
HOST = {"Host": "hello.localhost"}
UPGRADE = b"GET /ws HTTP/1.1\r\nHost: hello.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


@dataclass
class NodeB:
    door: Running  # its peer door
    local: LoopbackRuntime  # its own runtime, under the door's LocalOnly
    dep: DeploymentId
    routes: RouteTable


@pytest.fixture
async def node_b() -> AsyncIterator[NodeB]:
    """Node b's peer door ("b; region=us") in front of one ready instance: a real uvicorn app."""
    async with uvicorn_app("b") as address:
        local = LoopbackRuntime()
        dep = local.add("dep00001", Plan([address]))
        routes = table(route("hello", [(dep, 100)]))
        settings = EdgeSettings(node="b; region=us", region="us", trust_proxy=TRUST_LOOPBACK)
        async with running_edge(LocalOnly(local), routes, settings) as door:  # type: ignore[arg-type]
            yield NodeB(door, local, dep, routes)


def node_a(routes: RouteTable, serving: dict[DeploymentId, tuple[Serving, ...]], head: str = "") -> EdgeView:
    """Node a's public edge's view ("eu"): no instance of its own, a map from the head."""
    view = EdgeView(LoopbackRuntime(), "a", "eu", None, False)  # type: ignore[arg-type]
    view.show(ClusterMap(1, routes, serving, head))
    return view


def door_of(running: Running) -> str:
    return f"{running.host}:{running.port}"


async def test_a_request_is_answered_through_a_peer_nodes_door(
    node_b: NodeB,
) -> None:
    door, dep, routes = node_b.door, node_b.dep, node_b.routes
    view = node_a(routes, {dep: (Serving("b", "us", door_of(door), 1, 10),)})
    settings = EdgeSettings(node="a; region=eu", region="eu")
    async with running_edge(view, routes, settings) as edge_a, httpx.AsyncClient() as client:  # type: ignore[arg-type]
        response = await client.get(f"http://{edge_a.host}:{edge_a.port}/headers", headers=HOST)
    assert response.status_code == 200
    assert response.headers.get_list("x-roost-node") == ["b; region=us"]  # b's instance served, a added none
    assert response.headers.get_list("x-roost-start") == ["hot"]  # b's, once
    assert len(response.headers.get_list("x-request-id")) == 1
    seen = json.loads(response.text)["headers"]
    assert seen["x-request-id"] == response.headers["x-request-id"]  # b believed a's request id
    assert seen["x-forwarded-for"] == "127.0.0.1, 127.0.0.1"  # the client, then edge a
    assert "x-roost-deployment" not in seen  # the edges' own instruction, never the app's
    assert node_b.local.acquired == node_b.local.released == 1
    assert view.try_acquire(dep) is not None  # a's count of requests at b went back to 0 (slot released)


async def test_a_dead_peer_is_marked_unreachable_and_the_request_retried_on_another(
    node_b: NodeB,
) -> None:
    door, dep, routes = node_b.door, node_b.dep, node_b.routes
    refusing, refused = refusing_address()
    try:
        dead = Serving("dead", "eu", f"{refused[0]}:{refused[1]}", 1, 10)  # a's own region: tried first
        view = node_a(routes, {dep: (dead, Serving("b", "us", door_of(door), 1, 10))})
        async with running_edge(view, routes) as edge_a, httpx.AsyncClient() as client:  # type: ignore[arg-type]
            first = await client.get(f"http://{edge_a.host}:{edge_a.port}/", headers=HOST)
            assert (first.status_code, first.headers["x-roost-node"]) == (200, "b; region=us")
            assert first.text.startswith("hello from b GET /")
            assert view.is_unreachable("dead")
            assert node_b.local.acquired == 1  # one try at dead, one at b
            second = await client.get(f"http://{edge_a.host}:{edge_a.port}/", headers=HOST)
            assert (second.status_code, second.headers["x-roost-node"]) == (200, "b; region=us")
            assert node_b.local.acquired == 2
    finally:
        refusing.close()


async def test_a_node_activates_through_the_heads_edge_with_its_region() -> None:
    async with uvicorn_app("h") as address:
        local = LoopbackRuntime()
        dep = local.add("dep00001", Plan([address]), ready=0)  # scaled to zero everywhere
        routes = table(route("hello", [(dep, 100)]))
        asked: list[tuple[DeploymentId, int, str]] = []

        def activate(deployment: DeploymentId, slots: int, region: str) -> None:
            """The cluster runtime's part: here, start one on the head's own machine."""
            asked.append((deployment, slots, region))
            local.request_capacity(deployment, slots)

        head = EdgeView(local, "head", "us", activate, True)  # type: ignore[arg-type]
        head.show(ClusterMap(1, routes, {}, ""))
        head_settings = EdgeSettings(node="head; region=us", region="us", trust_proxy=TRUST_LOOPBACK)
        async with running_edge(head, routes, head_settings) as head_edge:  # type: ignore[arg-type]
            view = node_a(routes, {}, head=door_of(head_edge))
            async with running_edge(view, routes) as edge_a, httpx.AsyncClient() as client:  # type: ignore[arg-type]
                response = await client.get(f"http://{edge_a.host}:{edge_a.port}/", headers=HOST)
    assert response.status_code == 200
    assert response.text.startswith("hello from h GET /")
    assert response.headers.get_list("x-roost-node") == ["head; region=us"]
    assert response.headers.get_list("x-roost-start") == ["warm"]  # the head's edge waited for a fork
    assert asked == [(dep, 1, "eu")]  # the demand came from node a's region
    await until(lambda: local.acquired == local.released)


async def test_a_peer_that_overruns_the_time_limit_is_not_recycled_by_the_forwarding_edge(node_b: NodeB) -> None:
    """Edge a's 504 and grace end its connection to b's door; the instance is b's to recycle."""
    routes = table(route("hello", [(node_b.dep, 100)], timeout=0.3))  # a's limit, shorter than b's
    view = node_a(routes, {node_b.dep: (Serving("b", "us", door_of(node_b.door), 1, 10),)})
    settings = EdgeSettings(grace_recycle=0.1)
    async with running_edge(view, routes, settings) as edge_a, httpx.AsyncClient() as client:  # type: ignore[arg-type]
        response = await client.get(f"http://{edge_a.host}:{edge_a.port}/sleep?s=2", headers=HOST)
        assert response.status_code == 504
        await until(lambda: node_b.local.acquired == node_b.local.released == 1)  # b saw a go
        assert edge_a.recycled == []
        assert node_b.door.recycled == []


async def echo_after_upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An app that switches to a websocket-like echo."""
    await read_head(reader)
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def test_an_upgrade_is_tunnelled_through_a_peer_door_and_names_the_peer() -> None:
    async with raw_server(echo_after_upgrade) as address:
        local = LoopbackRuntime()
        dep = local.add("dep00001", Plan([address]))
        routes = table(route("hello", [(dep, 100)]))
        settings = EdgeSettings(node="b; region=us", region="us", trust_proxy=TRUST_LOOPBACK)
        async with running_edge(LocalOnly(local), routes, settings) as door:  # type: ignore[arg-type]
            view = node_a(routes, {dep: (Serving("b", "us", door_of(door), 1, 10),)})
            edge_settings = EdgeSettings(node="a; region=eu")
            async with running_edge(view, routes, edge_settings) as edge_a, edge_a.client() as client:  # type: ignore[arg-type]
                assert client.reader is not None
                await client.send(UPGRADE)
                head = await read_head(client.reader)
                assert head.startswith(b"HTTP/1.1 101 ")
                assert head.count(b"X-Roost-Node: ") == 1 and b"\r\nX-Roost-Node: b; region=us\r\n" in head
                assert head.count(b"X-Roost-Start: ") == 1
                await client.send(b"ping through two edges")
                assert await client.reader.readexactly(22) == b"ping through two edges"
