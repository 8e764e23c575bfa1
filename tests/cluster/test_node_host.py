"""A node's side of stage B, end to end: a head (`roost serve --cluster`) and a `roost node join`
in namespaces; a Ray driver in the head's namespace pins a `NodeAgent` actor to the node, as the
head's ClusterRuntime will, and through it: hello, prepare (a real archive, verified and built on
the node; twice at once, one build), show (routes), assign 1; the node's peer door answers with
the app; report shows the ready instance; assign 2 then 1 is followed; a killed instance is
started again and its crash reported; retire leaves no instance process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from roost.pack import pack_app
from tests.cluster.harness import TIMEOUT_HEAD, TIMEOUT_JOIN, copy_token, env_for, join, serve_head
from tests.cluster.netns import Host, Lan
from tests.e2e.apps import ANSWERS, EXAMPLES

MakeLan = Callable[[int], tuple[Lan, Path]]
REPO = Path(__file__).resolve().parents[2]
TIMEOUT_DRIVER = 900.0  # a build with uv and an instance start on a busy two-core machine


def _instance_processes(home: Path) -> list[str]:
    """Processes whose command line names the node's deployments (an instance runs from its code dir)."""
    listing = subprocess.run(["pgrep", "-af", str(home / "deployments")], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if "pgrep" not in line]


def test_the_head_runs_an_instance_on_a_node_through_its_agent(make_lan: MakeLan) -> None:
    lan, folder = make_lan(2)
    head, machine = lan.hosts
    _run_through_the_agent(head, machine, folder)


def _run_through_the_agent(head: Host, machine: Host, folder: Path) -> None:
    server = serve_head(head, folder / "h1")
    server.wait_for("roost is ready", TIMEOUT_HEAD)
    token = folder / "h1" / "cluster" / "token"
    node_home = folder / "h2"
    node = join(machine, node_home, head, "eu", "1G", copy_token(token, node_home), "n")
    node.wait_for("joined", TIMEOUT_JOIN)
    assert f"peer door  http://{machine.address}:8081" in node.output(), node.output()
    assert "edge       http://0.0.0.0:8080" in node.output()

    packed = pack_app(EXAMPLES / "handler-hello", folder / "hello.tar.gz")
    env = env_for(folder / "driver") | {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "HOME": str(folder / "driver"),
        "PYTHONPATH": str(REPO),
    }
    (folder / "driver").mkdir()
    args = [f"{head.address}:6379", "n", str(packed.path), packed.digest, "handler-hello", "a1b2c3d4"]
    done = subprocess.run(
        head.argv([sys.executable, "-m", "tests.cluster.agent_driver", *args]),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_DRIVER,
    )
    assert done.returncode == 0, done.stdout + done.stderr + node.output()
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["socket_env"] == {  # Ray's workers inherit it from `ray start`, on each machine its own
        "n": str(node_home / "cluster" / "agent.sock"),
        "head": str(folder / "h1" / "cluster" / "agent.sock"),
    }
    assert seen["hello"] == {"name": "n", "region": "eu", "door": f"{machine.address}:8081"}
    waited, built = seen["prepare_seconds"]
    assert waited == 0.0 and built > 0 and seen["prepare_again_seconds"] == 0.0
    assert seen["mismatch"]["type"].startswith("RayTaskError") or seen["mismatch"]["type"] == "DigestMismatch"
    assert packed.digest in seen["mismatch"]["message"]
    assert len(seen["ready"]) == 1 and seen["prepared"] == ["a1b2c3d4"]
    assert seen["answer"]["status"] == 200 and ANSWERS["handler-hello"] in seen["answer"]["body"], seen
    isolation = seen["isolation"][seen["ready"][0]["id"]]  # read back from the instance's own process
    assert 200000 <= isolation["uid"] <= 265535, isolation  # the app's own uid, as on a single machine
    assert seen["demand_after"] == {}  # the peer door's requests are the forwarding edge's demand, not this node's
    assert seen["raised_to_2"] == 2 and len(seen["lowered_to_1"]) == 1  # the head's count, up and down
    assert len(seen["restarted"]) == 1 and seen["restarted"][0]["id"] != seen["crashed"]["id"]
    assert "instance.crashed" in seen["events"] and "instance.ready" in seen["events"], seen["events"]
    assert seen["after_retire"] == {"instances": 0, "prepared": []}
    pids = {seen["ready"][0]["pid"], *seen["lowered_to_1"], seen["restarted"][0]["pid"]}
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()] and _instance_processes(node_home) == []
    logs = "".join(p.read_text(errors="replace") for p in (node_home / "logs").rglob("*") if p.is_file())
    assert logs.count("building a1b2c3d4 on node n") == 1, logs  # two prepares at once, one build
    assert "==> done in" in logs
    median, slowest = seen["report_ms"]
    print(
        f"\nprepare on the node (verify, keep, build) took {built:.1f} s; report() through the actor and the "
        f"socket {median:.1f} ms (median of 21, max {slowest:.1f} ms)"
    )

    assert node.stop() == 0, node.output()
    assert "left the cluster" in node.output()
    assert not (node_home / "cluster" / "agent.sock").exists()
    assert server.stop() == 0, server.output()
    assert machine.pids() == [] and os.path.isdir(node_home)
