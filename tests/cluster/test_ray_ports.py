"""Ray's ports and token are out of the apps' reach: on a head and a node (two namespaced
machines), every socket Ray's processes listen on lies in the cluster's block (7300-7399 by
default), and an app pushed to the head can neither connect to Ray's GCS, raylet or worker ports
(on its own machine or the node, on any address) nor open the cluster's token, nor find Ray's
variables in its environment; the edge, outside the block, it still reaches. A block moved
elsewhere holds every port too, and a node given only the head's address joins its first port.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.cluster.harness import TIMEOUT_HEAD, TIMEOUT_JOIN, copy_token, join, roost, serve_head, start
from tests.cluster.netns import Host, Lan
from tests.e2e.apps import wait_until, write_app

MakeLan = Callable[[int], tuple[Lan, Path]]
BLOCK = range(7300, 7400)
GCS, NODE_MANAGER = 7300, 7301
WORKERS = range(7308, 7400)
TIMEOUT_PUSH = 600

# A Ray driver on the head that keeps one actor on the node (only nodes offer roost_memory), as
# Roost's own driver and agent actors will: each is a Ray worker process with a port of its own.
DRIVER = """
import os, time, ray
ray.init(address=os.environ["GCS"])

@ray.remote(resources={"roost_memory": 1})
class Agent:
    def where(self):
        return ray.get_runtime_context().get_node_id()

agent = Agent.remote()
print("actor on", ray.get(agent.where.remote()), flush=True)
time.sleep(600)
"""

TOML = 'name = "ports-probe"\nentrypoint = "handler:handler"\n'
# The app: each TARGETS entry tried as TCP from inside the instance, then the token opened.
HANDLER = """
import errno, json, os, socket

TARGETS = json.loads({targets!r})
TOKEN = {token!r}


def handler(request):
    tried = {{}}
    for host, port in TARGETS:
        with socket.socket() as s:
            s.settimeout(5)
            try:
                s.connect((host, port))
                tried[f"{{host}}:{{port}}"] = "connected"
            except OSError as exc:
                tried[f"{{host}}:{{port}}"] = errno.errorcode.get(exc.errno or 0, str(exc))
    try:
        with open(TOKEN) as file:
            tried["token"] = "read " + str(len(file.read())) + " characters"
    except OSError as exc:
        tried["token"] = type(exc).__name__
    tried["ray variables"] = sorted(name for name in os.environ if name.startswith("RAY_"))
    return tried
"""


def test_rays_ports_and_token_are_out_of_the_apps_reach(make_lan: MakeLan) -> None:
    lan, folder = make_lan(2)
    head, machine = lan.hosts
    head_home = folder / "h1"
    server = serve_head(head, head_home)
    server.wait_for("roost is ready", TIMEOUT_HEAD)
    token = head_home / "cluster" / "token"
    node = join(machine, folder / "h2", head, "eu", "512M", copy_token(token, folder / "h2"), "n")
    node.wait_for("joined", TIMEOUT_JOIN)
    driver = _driver(head, token)
    try:
        ray_on_head = _ray_listeners(head, server.proc.pid)
        ray_on_node = _ray_listeners(machine, node.proc.pid)
        print(f"\nRay listens on the head on {sorted(ray_on_head)}, on the node on {sorted(ray_on_node)}")
        for listening in (ray_on_head, ray_on_node):
            assert set(listening) <= set(BLOCK), listening
            assert NODE_MANAGER in listening and set(listening) & set(WORKERS), listening
        assert GCS in ray_on_head
        head_worker = min(set(ray_on_head) & set(WORKERS))
        node_worker = min(set(ray_on_node) & set(WORKERS))

        edge_port = int(re.findall(r"edge\s+http://\S+:(\d+)", server.output())[0])
        targets = [
            [head.address, GCS],
            ["127.0.0.1", GCS],
            [head.address, NODE_MANAGER],
            [head.address, head_worker],
            [machine.address, NODE_MANAGER],
            [machine.address, node_worker],
            [head.address, edge_port],  # outside the block: reached, so a refusal above is the firewall's
        ]
        for host_port in targets:  # each one answers Roost itself (root), so a refusal is never an empty port
            assert _connects(head, *host_port), host_port
        answer = _ask_app(head, head_home, folder, targets, token, edge_port)
        (app_uid,) = _app_uids(head)
        as_app_uid = _open_as(app_uid, token)
    finally:
        driver.kill()
        driver.communicate(timeout=30)
    print(f"the app tried: {answer}")
    for host, port in targets[:-1]:
        assert answer[f"{host}:{port}"] == "ECONNREFUSED", (host, port, answer)
    assert answer[f"{head.address}:{edge_port}"] == "connected", answer
    assert answer["token"] in {"PermissionError", "FileNotFoundError"}, answer
    assert answer["ray variables"] == [], answer
    # the app's uid outside the sandbox's mounts (which do not show the home at all): the home (0700; o+x when
    # the sandbox runs without bubblewrap) and the cluster's folder (0700, tests/unit/cluster) refuse it
    assert as_app_uid == {"token": "PermissionError", "ray": "PermissionError", "home": "PermissionError"}, as_app_uid
    for running in (node, server):
        assert running.stop() == 0, running.output()


def _driver(head: Host, token: Path) -> subprocess.Popen[str]:
    """A Ray driver in the head's namespace, its actor placed on the node; waited for."""
    env = {"PATH": "/usr/bin:/bin", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    env |= {"GCS": f"{head.address}:{GCS}", "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(token.parent)}
    driver = subprocess.Popen(
        head.argv([sys.executable, "-c", DRIVER]), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert driver.stdout is not None
    seen: list[str] = []
    for line in driver.stdout:  # bounded: the driver exits (closing its output) if Ray refuses it
        seen.append(line)
        if line.startswith("actor on"):
            return driver
    driver.kill()
    raise AssertionError("the Ray driver ended before its actor answered:\n" + "".join(seen))


def _ray_listeners(host: Host, roost_pid: int) -> dict[int, str]:
    """Every TCP port something listens on in `host` but Roost itself (the daemon or `roost node
    join`: its edge and API), with the process's name: Ray's processes and the driver."""
    listing = subprocess.run(host.argv(["ss", "-Hltnp"]), capture_output=True, text=True, timeout=30, check=True)
    found = {}
    for line in listing.stdout.splitlines():
        port = int(line.split()[3].rpartition(":")[2])
        process = re.search(r'\("([^"]+)",pid=(\d+)', line)
        assert process is not None, line  # as root, ss names every socket's process
        if int(process.group(2)) != roost_pid:
            found[port] = process.group(1)
    return found


def _app_uids(head: Host) -> set[int]:
    """The uids of the app processes running in the head's namespace (Roost's range starts at 200000)."""
    uids = set()
    for pid in head.pids():
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            found = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
            if found and int(found.group(1)) >= 200000:
                uids.add(int(found.group(1)))
    return uids


OPEN_AS = """
import json, os, sys
token = sys.argv[1]
tried = {}
for what, act in (("token", lambda: open(token).read()), ("ray", lambda: os.listdir(os.path.dirname(token) + "/ray")),
                  ("home", lambda: os.listdir(os.path.dirname(os.path.dirname(token))))):
    try:
        act(); tried[what] = "done"
    except OSError as exc:
        tried[what] = type(exc).__name__
print(json.dumps(tried))
"""


def _open_as(uid: int, token: Path) -> dict[str, str]:
    """What a process of `uid` (and its gid, no other group) can do with the token and Ray's folder."""
    argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c", OPEN_AS, str(token)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    tried: dict[str, str] = json.loads(done.stdout)
    return tried


def _connects(host: Host, address: str, port: int) -> bool:
    probe = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()"
    done = subprocess.run(host.argv([sys.executable, "-c", probe, address, str(port)]), capture_output=True, timeout=30)
    return done.returncode == 0


def _ask_app(
    head: Host, home: Path, folder: Path, targets: list[list[object]], token: Path, edge_port: int
) -> dict[str, object]:
    """Push the probing app to the head and ask it, through the head's edge, what it could reach."""
    source = HANDLER.format(targets=json.dumps(targets), token=str(token))
    app = write_app(folder, "ports-probe", {"handler.py": source, "roost.toml": TOML})
    pushed = roost(head, home, "push", str(app), within=TIMEOUT_PUSH)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    ask = (
        "import sys, urllib.request; request = urllib.request.Request(sys.argv[1], headers={'Host': sys.argv[2]}); "
        "print(urllib.request.urlopen(request, timeout=120).read().decode())"
    )
    url = f"http://{head.address}:{edge_port}/"
    asked = wait_until(
        "the app's answer",
        lambda: _answered(head.argv([sys.executable, "-c", ask, url, "ports-probe.localhost"])),
        120,
        every=1.0,
    )
    answer: dict[str, object] = json.loads(asked)
    return answer


def _answered(argv: list[str]) -> str | None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=150)
    return done.stdout if done.returncode == 0 else None


def test_a_moved_block_holds_every_port_and_a_node_joins_its_first_without_a_port(make_lan: MakeLan) -> None:
    """The smallest block Roost takes, elsewhere: the head's Ray on its first port, a node told only
    the head's address and the same block joins there, and neither listens outside it."""
    lan, folder = make_lan(2)
    head, machine = lan.hosts
    block = ["--cluster-ports", "8000-8023"]
    server = serve_head(head, folder / "h1", *block)
    server.wait_for("roost is ready", TIMEOUT_HEAD)
    assert f"cluster    {head.address}:8000" in server.output(), server.output()
    token = copy_token(folder / "h1" / "cluster" / "token", folder / "h2")
    args = ["node", "join", head.address, "--region", "eu", "--memory-budget", "512M", *block]
    node = start(
        machine, folder / "h2", [*args, "--token-file", str(token), "--name", "n", "--home", str(folder / "h2")], "node"
    )
    node.wait_for(f"joined {head.address}:8000 as n", TIMEOUT_JOIN)
    for host, running in ((head, server), (machine, node)):
        listening = _ray_listeners(host, running.proc.pid)
        assert 8001 in listening and set(listening) <= set(range(8000, 8024)), listening
    for running in (node, server):
        assert running.stop() == 0, running.output()
