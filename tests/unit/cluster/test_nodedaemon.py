"""The node daemon's wiring without Ray: it locks its home, listens on both doors and the agent
socket, says where, answers the agent, and closing it removes the socket and frees the home."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import httpx
import pytest

from roost.cluster.agent import NodeAgent
from roost.cluster.cluster_settings import NodeSettings, agent_socket_path
from roost.cluster.nodedaemon import NodeDaemon, address_toward, split_host
from roost.errors import DaemonAlreadyRunning
from roost.runtime.sandbox.host_confinement import HostConfinement
from roost.serve_settings import ServeSettings


def settings(home: Path) -> NodeSettings:
    return NodeSettings(
        home, "127.0.0.1:6379", "eu", 2**30, home / "token", "n1", "127.0.0.1", "127.0.0.1", edge_port=0, peer_port=0
    )


def daemon(home: Path, lines: list[str]) -> NodeDaemon:
    return NodeDaemon(settings(home), lines.append, confinement=HostConfinement(firewall=False))


async def test_a_node_daemon_serves_its_doors_and_its_agent_until_closed(tmp_path: Path) -> None:
    home = tmp_path / "node"
    lines: list[str] = []
    node = daemon(home, lines)
    try:
        await node.start()
        assert node.host is not None and node.edge is not None
        door = node.host.identity.door
        assert door.startswith("127.0.0.1:") and not door.endswith(":0")
        assert any(line.startswith("peer door  http://" + door) for line in lines), lines
        socket_path = agent_socket_path(home)
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        identity = await asyncio.to_thread(NodeAgent(str(socket_path)).hello)
        assert (identity.name, identity.region, identity.door) == ("n1", "eu", door)
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://{door}/", headers={"Host": "nothing.localhost"})
        assert answer.status_code == 404  # no routes before the head's first map
        with pytest.raises(DaemonAlreadyRunning):
            await daemon(home, []).start()
    finally:
        await node.close()
    assert not agent_socket_path(home).exists()
    again = daemon(home, [])
    try:
        await again.start()  # the home's lock was released
    finally:
        await again.close()


def test_a_node_confines_as_roost_serve_does_by_default() -> None:
    node, serve = HostConfinement(), ServeSettings(home=Path("unused"))
    assert (node.uid_first, node.uid_last, node.firewall) == (serve.uid_first, serve.uid_last, serve.firewall)
    assert (node.ports.first, node.ports.last) == (serve.instance_port_first, serve.instance_port_last)
    assert (node.build_memory, node.build_cpu, node.build_pids) == (
        serve.build_memory,
        serve.build_cpu,
        serve.build_pids,
    )
    assert node.build_sandbox == serve.build_sandbox


@pytest.mark.parametrize(
    ("address", "host"), [("10.0.0.1:6379", "10.0.0.1"), ("[fd00::1]:6379", "fd00::1"), ("head.lan:1", "head.lan")]
)
def test_the_head_s_host_is_split_from_its_port(address: str, host: str) -> None:
    assert split_host(address) == host


def test_this_machine_s_address_toward_the_head_is_the_one_on_that_route() -> None:
    assert address_toward("127.0.0.1:6379") == "127.0.0.1"
