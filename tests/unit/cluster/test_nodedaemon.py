"""The node daemon's wiring without Ray: it locks its home, listens on both doors and the agent
socket, says where, answers the agent, and closing it removes the socket and frees the home."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from roost.cluster.agent import NodeAgent
from roost.cluster.cluster_settings import NodeSettings, agent_socket_path, cluster_dir
from roost.cluster.ledger import InstanceLedger
from roost.cluster.nodedaemon import NodeDaemon, address_toward, door_settings, split_host
from roost.errors import ConfigError, DaemonAlreadyRunning
from roost.model import AppName, DeploymentId, InstanceId, InstanceState
from roost.runtime.protocol import InstanceInfo, StartKind
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


def test_the_peer_door_caps_no_single_address_as_its_clients_are_edges() -> None:
    door = door_settings()
    assert door.rate_per_client == 0.0
    assert door.limit_connections_per_client == door.limit_connections


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
    with pytest.raises(ConfigError, match=r"address toward the head head\.invalid:6379") as unknown:
        address_toward("head.invalid:6379")  # a name that does not resolve: said, with the way out
    assert "--address" in unknown.value.hint


def _orphan_marked_as_an_instance() -> int:
    """A process that looks like an instance a killed daemon left: marked ROOST_INSTANCE in its
    environment, in a group of its own, and not a child of this process (its shell is gone)."""
    line = "env ROOST_INSTANCE=i-left sleep 300 >/dev/null 2>&1 & echo $!"
    done = subprocess.run(["setsid", "sh", "-c", line], capture_output=True, text=True, timeout=10, check=True)
    return int(done.stdout.strip())


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"


async def test_a_node_daemon_ends_what_a_killed_run_left_running(tmp_path: Path) -> None:
    home = tmp_path / "node"
    pid = _orphan_marked_as_an_instance()
    pgid = os.getpgid(pid)
    try:
        ledger = cluster_dir(home) / "instances.json"
        ledger.parent.mkdir(parents=True)
        row = {"id": "i-left", "app": "a", "deployment": "d1234567", "pid": pid, "pgid": pgid, "started_at": 1.0}
        ledger.write_text(json.dumps([row]))
        lines: list[str] = []
        node = daemon(home, lines)
        try:
            await node.start()
        finally:
            await node.close()
        assert f"ended what a previous run left running: process group {pgid}" in lines
        for _ in range(100):
            if _gone(pid):
                break
            await asyncio.sleep(0.05)
        assert _gone(pid)
        assert json.loads(ledger.read_text()) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def info(instance: str, state: InstanceState, pid: int | None) -> InstanceInfo:
    return InstanceInfo(
        InstanceId(instance),
        AppName("a"),
        DeploymentId("d1234567"),
        state,
        "127.0.0.1",
        20000,
        pid,
        5.0,
        StartKind.FORK,
    )


async def test_the_ledger_lists_live_instances_only(tmp_path: Path) -> None:
    path = tmp_path / "cluster" / "instances.json"
    ledger = InstanceLedger(path)
    await ledger.start()
    ledger.instance_changed(info("i1", InstanceState.STARTING, 101))
    ledger.instance_changed(info("i2", InstanceState.READY, 102))
    ledger.instance_changed(info("i1", InstanceState.CRASHED, 101))
    ledger.instance_changed(info("i3", InstanceState.STOPPED, None))
    await ledger.close()
    left = InstanceLedger.leftovers(path)
    assert [(r.id, r.pid, r.pgid, r.deployment) for r in left] == [("i2", 102, 102, "d1234567")]
    path.write_text("not json")
    assert InstanceLedger.leftovers(path) == []
