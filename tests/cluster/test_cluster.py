"""A cluster on three namespaced machines: `roost serve --cluster` on one, `roost node join` on two.

The head lists both nodes with their regions and budgets; a node whose processes are all killed
is reported dead within a bounded time (printed); it rejoins and is listed alive again; stopping
the nodes and the head leaves no process and no namespace; a node without the right token is
refused; a daemon without --cluster never loads Ray and says it is not a head.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cluster.harness import (
    TIMEOUT_HEAD,
    TIMEOUT_JOIN,
    Running,
    copy_token,
    join,
    nodes,
    nodes_if_answered,
    pss_mib,
    roost,
    serve_head,
    start,
)
from tests.cluster.netns import Host, Lan, namespaces
from tests.e2e.apps import wait_until

MakeLan = Callable[[int], tuple[Lan, Path]]

GIB = 1024**3
TIMEOUT_DEAD = 30.0  # health checks every 1 s, 1 s to answer, dead after 3 misses: ~4-8 s when idle
RAY_PROCESSES = ("raylet", "gcs_server", "ray::", "ray.scripts.scripts", "default_worker")


def test_nodes_join_die_and_rejoin(make_lan: MakeLan) -> None:
    lan, folder = make_lan(3)
    head, eu, us = lan.hosts
    head_home = folder / "h1"
    server = serve_head(head, head_home)
    head_seconds = server.wait_for("roost is ready", TIMEOUT_HEAD)
    ray_up = re.search(r"Ray's head up in ([\d.]+) s", server.output())
    assert ray_up, server.output()
    ray_seconds = float(ray_up.group(1))
    token = head_home / "cluster" / "token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600

    eu_node = join(eu, folder / "h2", head, "eu", "1G", copy_token(token, folder / "h2"), "eu-1")
    us_node = join(us, folder / "h3", head, "us", "2G", copy_token(token, folder / "h3"), "us-1")
    join_seconds = [node.wait_for("joined", TIMEOUT_JOIN) for node in (eu_node, us_node)]

    listed = wait_until("both nodes listed alive", lambda: _both_alive(head, head_home), 30)
    assert (listed["eu-1"]["region"], listed["eu-1"]["memory_budget"]) == ("eu", GIB)
    assert (listed["us-1"]["region"], listed["us-1"]["memory_budget"]) == ("us", 2 * GIB)
    assert (listed["eu-1"]["address"], listed["us-1"]["address"]) == (eu.address, us.address)
    assert listed["head"]["role"] == "head" and listed["head"]["alive"]
    print(
        f"\nhead ready in {head_seconds:.1f} s (Ray's head {ray_seconds:.1f} s of it), nodes joined in "
        f"{', '.join(f'{s:.1f}' for s in join_seconds)} s; memory (PSS): head host {pss_mib(head.pids()):.0f} MiB "
        f"(daemon {pss_mib([server.proc.pid]):.0f}), node {pss_mib(eu.pids()):.0f} MiB"
    )

    killed_at = time.monotonic()
    us.kill_all()  # SIGKILL of `roost node join` and every Ray process of that machine
    dead = wait_until("us-1 marked dead", lambda: _dead(head, head_home, "us-1"), TIMEOUT_DEAD)
    print(f"a SIGKILLed node was reported dead after {time.monotonic() - killed_at:.1f} s ({dead['reason']})")
    assert nodes(head, head_home)["eu-1"]["alive"]
    table = roost(head, head_home, "nodes").stdout.splitlines()
    header = ["NODE", "ROLE", "REGION", "MEMORY", "USED/BUDGET", "INSTANCES", "ADDRESS", "STATE", "SINCE"]
    assert table[0].split() == header, table
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["eu-1"][:7] == ["eu-1", "node", "eu", "0/1G", "0", eu.address, "alive"]
    assert rows["us-1"][:7] == ["us-1", "node", "us", "0/2G", "0", us.address, "dead:"]

    again = join(us, folder / "h3", head, "us", "2G", folder / "h3" / "token", "us-1")
    again.wait_for("joined", TIMEOUT_JOIN)
    back = wait_until("us-1 listed alive again", lambda: _alive(head, head_home, "us-1"), 30)
    assert back["node_id"] != dead["node_id"] and back["memory_budget"] == 2 * GIB

    for running in (again, eu_node, server):
        assert running.stop() == 0, running.output()


def _both_alive(head: Host, home: Path) -> dict[str, dict[str, Any]] | None:
    listed = nodes(head, home)
    return listed if all(listed.get(n, {}).get("alive") for n in ("eu-1", "us-1")) else None


def _dead(head: Host, home: Path, name: str) -> dict[str, Any] | None:
    node = nodes(head, home)[name]
    return node if not node["alive"] else None


def _alive(head: Host, home: Path, name: str) -> dict[str, Any] | None:
    node = nodes_if_answered(head, home).get(name)
    return node if node and node["alive"] else None


def head_and_node(head: Host, machine: Host, folder: Path) -> tuple[Running, Running]:
    """A ready head in folder/h1 and node "n" (region eu, 512M) joined from folder/h2."""
    server = serve_head(head, folder / "h1")
    server.wait_for("roost is ready", TIMEOUT_HEAD)
    node = join(machine, folder / "h2", head, "eu", "512M", copy_token(folder / "h1/cluster/token", folder / "h2"), "n")
    node.wait_for("joined", TIMEOUT_JOIN)
    return server, node


def _ray_processes(folder: Path) -> list[str]:
    """Ray's processes anywhere on this machine that belong to this run (its folder in their command line)."""
    listing = subprocess.run(["pgrep", "-af", str(folder)], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if any(name in line for name in RAY_PROCESSES)]


def test_stopping_leaves_no_process_and_no_namespace(make_lan: MakeLan) -> None:
    lan, folder = make_lan(2)
    head, machine = lan.hosts
    server, node = head_and_node(head, machine, folder)
    assert _ray_processes(folder), "the check below would see no Ray process even while they run"

    assert node.stop() == 0, node.output()
    assert "left the cluster" in node.output()
    wait_until("a node that left listed dead", lambda: _dead(head, folder / "h1", "n"), 30)
    assert server.stop() == 0, server.output()
    left = [Path(f"/proc/{pid}/cmdline").read_bytes()[:200] for pid in machine.pids() + head.pids()]
    assert left == [], left
    assert _ray_processes(folder) == []

    names = lan.names()
    lan.close()
    assert not set(names) & namespaces()


def test_a_node_with_another_token_is_refused(make_lan: MakeLan) -> None:
    lan, folder = make_lan(2)
    head, machine = lan.hosts
    server = serve_head(head, folder / "h1")
    server.wait_for("roost is ready", TIMEOUT_HEAD)
    forged = folder / "h2" / "token"
    forged.parent.mkdir()
    forged.write_text("0" * 64)
    forged.chmod(0o600)
    intruder = join(machine, folder / "h2", head, "eu", "512M", forged, "intruder")
    code = intruder.proc.wait(timeout=TIMEOUT_JOIN)
    assert code == 1, intruder.output()
    assert "refused the token in" in intruder.output() and "joined" not in intruder.output()
    assert "intruder" not in nodes(head, folder / "h1")
    assert machine.pids() == []

    nobody = f"{lan.subnet}.99"
    elsewhere = roost(machine, folder / "h2", "node", "join", nobody, "--region", "eu",
                      "--token-file", str(folder / "h2" / "token"))  # fmt: skip
    assert elsewhere.returncode == 1 and f"{nobody}:7300 did not answer" in elsewhere.stderr

    forged.chmod(0o644)
    loose = roost(machine, folder / "h2", "node", "join", f"{head.address}:7300", "--region", "eu",
                  "--token-file", str(forged))  # fmt: skip
    assert loose.returncode == 2 and "can be read by others" in loose.stderr
    assert server.stop() == 0


def test_a_daemon_without_cluster_loads_no_ray_and_says_it_is_no_head(make_lan: MakeLan) -> None:
    lan, folder = make_lan(1)
    (host,) = lan.hosts
    home = folder / "h1"
    server = start(host, home, ["serve", "--home", str(home), "--port", "0", "--api-port", "0"], "serve")
    server.wait_for("roost is ready", TIMEOUT_HEAD)
    maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    assert "/ray/" not in maps and "_raylet" not in maps
    done = roost(host, home, "nodes")
    assert done.returncode == 1
    assert "not a cluster head" in done.stderr and "roost serve --cluster" in done.stderr
    assert server.stop() == 0


def test_the_head_starts_ray_again_when_it_dies(make_lan: MakeLan) -> None:
    lan, folder = make_lan(2)
    head, machine = lan.hosts
    server, node = head_and_node(head, machine, folder)
    before = wait_until("the head listed", lambda: _alive(head, folder / "h1", "head"), 30)

    gcs = subprocess.run(["pgrep", "-f", f"gcs_server.*{folder}/h1/"], capture_output=True, text=True).stdout.split()
    assert len(gcs) == 1
    killed_at = time.time()
    os.kill(int(gcs[0]), signal.SIGKILL)
    server.wait_for("starting it again", 60)
    down = roost(head, folder / "h1", "nodes")
    assert down.returncode == 1 and "Ray head" in down.stderr, down.stderr
    after = wait_until("the head's Ray back", lambda: _alive(head, folder / "h1", "head"), TIMEOUT_HEAD)
    assert after["node_id"] != before["node_id"]
    again = wait_until("the node rejoined", lambda: _alive(head, folder / "h1", "n"), TIMEOUT_JOIN)
    assert again["started_at"] > after["started_at"]
    print(
        f"\nRay's head killed: back after {after['started_at'] - killed_at:.1f} s, "
        f"its node rejoined after {again['started_at'] - killed_at:.1f} s"
    )
    for running in (node, server):
        assert running.stop() == 0, running.output()


def test_a_taken_cluster_port_is_said_before_anything_starts(make_lan: MakeLan) -> None:
    lan, folder = make_lan(1)
    (host,) = lan.hosts
    holder = subprocess.Popen(
        host.argv([sys.executable, "-c", HOLD_PORT, host.address]), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "listening"
        server = serve_head(host, folder / "h1")
        assert server.proc.wait(timeout=TIMEOUT_HEAD) == 1
        assert f"port 7300 on {host.address} is in use" in server.output()
        assert "--cluster-port" in server.output()
        assert not (folder / "h1" / "cluster" / "token").exists()
    finally:
        holder.kill()
        holder.communicate(timeout=10)


HOLD_PORT = """
import socket, sys, time
s = socket.socket()
s.bind((sys.argv[1], 7300))
s.listen()
print("listening", flush=True)
time.sleep(600)
"""


def test_ray_does_not_outlive_a_killed_daemon_or_node(make_lan: MakeLan) -> None:
    lan, folder = make_lan(2)
    head, machine = lan.hosts
    server, node = head_and_node(head, machine, folder)
    assert any("raylet" in line for line in _ray_processes(folder / "h2"))

    for running in (node, server):
        running.proc.send_signal(signal.SIGKILL)  # Roost alone: Ray's processes get no signal from here
        running.proc.wait(timeout=10)
    wait_until("Ray's processes gone after their parent's SIGKILL", lambda: not _ray_processes(folder), 60)
    assert machine.pids() == [] and head.pids() == []

    again = serve_head(head, folder / "h1")  # the port is free again
    again.wait_for("roost is ready", TIMEOUT_HEAD)
    assert again.stop() == 0, again.output()
