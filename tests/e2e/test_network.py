"""Nothing bypasses the edge: against a real `roost serve` as root, an instance's port answers
only the edge. Command apps that bind 0.0.0.0 and :: are tried from a second network namespace
(a veth pair to this host), and from inside another app that reads /proc/net/tcp(6) for its
neighbours' ports and the admin API's; every way fails while the edge still serves them all.
Needs root (skipped otherwise: there is no firewall then) and nft (a missing nft fails)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from roost.runtime.sandbox.firewall import table_name
from tests.e2e.apps import get, pushed, ready_instances, wait_until, write_app
from tests.e2e.harness import Daemon, run_cli, spawn, uid_range

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the firewall needs root (non-root: it says so at start)")
# Outside the default range: the flag must reach the allocator and the rules, and no other test
# daemon running beside this one (pytest-xdist) has a table that closes these ports too.
PORT_FIRST, PORT_LAST = 30000, 30999
BUILD_ALLOW = "192.0.2.0/24:8443"
COMMAND = 'command = "python server.py"\nmode = "service"\n'
SERVER = """
import json, os, socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"app": os.environ["ROOST_APP"], "cron": self.headers.get("X-Roost-Cron")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

class Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in "{host}" else socket.AF_INET

Server(("{host}", int(os.environ["PORT"])), Echo).serve_forever()
"""
SPY = """
import errno, socket

def listening(path):
    ports = set()
    try:
        lines = open(path).read().splitlines()[1:]
    except OSError:
        return ports
    for line in lines:
        fields = line.split()
        if fields[3] == "0A":  # TCP_LISTEN
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports

def attempt(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(3)
        try:
            s.connect((host, port))
        except OSError as exc:
            return errno.errorcode.get(exc.errno or 0, str(exc))
        try:
            s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nX-Roost-Cron: forged\\r\\nConnection: close\\r\\n\\r\\n")
            return "connected: " + s.recv(200).decode(errors="replace").split("\\r\\n")[0]
        except OSError as exc:
            return f"connected: {exc}"

def handler(request):
    seen = sorted(listening("/proc/net/tcp") | listening("/proc/net/tcp6"))
    wanted = [int(p) for p in request.query.get("ports", "").split(",") if p]
    results = {}
    for port in wanted:
        for host in ("127.0.0.1", "::1", request.query["outside"]):
            results[f"{host} {port}"] = attempt(host, port)
    return {"listening": seen, "results": results}
"""


@dataclass(frozen=True)
class Outside:
    """A second network namespace wired to this host by a veth pair."""

    netns: str
    host_v4: str  # this host's end
    host_v6: str

    def connect(self, host: str, port: int) -> str:
        """From inside the namespace: "ok" once the TCP handshake completes, else the errno name."""
        code = (
            "import errno, socket, sys\n"
            "host, port = sys.argv[1], int(sys.argv[2])\n"
            "family = socket.AF_INET6 if ':' in host else socket.AF_INET\n"
            "s = socket.socket(family); s.settimeout(3)\n"
            "try:\n    s.connect((host, port)); print('ok')\n"
            "except OSError as exc:\n    print(errno.errorcode.get(exc.errno or 0, 'timeout'))\n"
        )
        argv = ["ip", "netns", "exec", self.netns, sys.executable, "-c", code, host, str(port)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
        return done.stdout.strip()


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def outside() -> Iterator[Outside]:
    """Unique names and a random link-local /30 and ULA /64, so concurrent runs never meet;
    deleting the namespace deletes the veth pair with it."""
    assert shutil.which("ip"), "iproute2 is needed to make a network namespace"
    tag = uuid.uuid4().hex[:8]
    netns, host_if, peer_if = f"roostnet{tag}", f"rn{tag}h", f"rn{tag}p"
    third, fourth = random.randrange(1, 255), random.randrange(0, 64) * 4  # noqa: S311 - not secrets
    host_v4, peer_v4 = f"169.254.{third}.{fourth + 1}", f"169.254.{third}.{fourth + 2}"
    prefix = f"fd{tag[:2]}:{tag[2:6]}:{random.randrange(65536):x}:1"  # noqa: S311
    host_v6, peer_v6 = f"{prefix}::1", f"{prefix}::2"
    _run("ip", "netns", "add", netns)
    try:
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _run("ip", "link", "set", peer_if, "netns", netns)
        _run("ip", "addr", "add", f"{host_v4}/30", "dev", host_if)
        _run("ip", "addr", "add", f"{host_v6}/64", "dev", host_if, "nodad")
        _run("ip", "link", "set", host_if, "up")
        _run("ip", "-n", netns, "addr", "add", f"{peer_v4}/30", "dev", peer_if)
        _run("ip", "-n", netns, "addr", "add", f"{peer_v6}/64", "dev", peer_if, "nodad")
        _run("ip", "-n", netns, "link", "set", peer_if, "up")
        _run("ip", "-n", netns, "link", "set", "lo", "up")
        yield Outside(netns, host_v4, host_v6)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], check=False, capture_output=True)


@pytest.fixture(scope="module")
def fenced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon whose edge listens on every address, with two command apps binding 0.0.0.0
    and ::, and a spy app."""
    assert shutil.which("nft"), "nft is needed (apt-get install nftables)"
    root = tmp_path_factory.mktemp("network")
    home = root / "home"
    home.mkdir()
    apps = {
        "wide4": {"roost.toml": COMMAND, "server.py": SERVER.replace("{host}", "0.0.0.0")},
        "wide6": {"roost.toml": COMMAND, "server.py": SERVER.replace("{host}", "::")},
        "spy": {"roost.toml": 'entrypoint = "main:handler"\nmode = "function"\n', "main.py": SPY},
    }
    daemon = spawn(
        home, "--host", "0.0.0.0", "--instance-ports", f"{PORT_FIRST}-{PORT_LAST}", "--build-allow", BUILD_ALLOW
    )
    try:
        daemon.wait_ready()
        for name, files in apps.items():
            pushed(daemon, write_app(root, name, files))
        yield daemon
        daemon.signal(signal.SIGTERM)
        assert daemon.wait_exit() == 0, daemon.output()[-2000:]
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
        assert table_name(home) not in tables, "the firewall table outlived a clean shutdown"
    finally:
        daemon.stop()  # and, were it killed, its table


def instance_port(daemon: Daemon, app: str) -> int:
    get(daemon, f"{app}.localhost")  # at least one instance
    ready = wait_until(f"a ready instance of {app}", lambda: ready_instances(daemon, app), timeout=30)
    return int(ready[0]["address"].rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def ports(fenced: Daemon) -> dict[str, int]:
    return {app: instance_port(fenced, app) for app in ("wide4", "wide6")}


def test_the_sandbox_line_names_the_firewall(fenced: Daemon) -> None:
    line = next((line for line in fenced.output().splitlines() if "sandbox:" in line), "")
    assert f"firewall nft inet {table_name(fenced.home)}" in line, line
    assert f"instance ports {PORT_FIRST}-{PORT_LAST}" in line, line


def test_builds_reach_only_the_index_and_what_the_operator_allows(fenced: Daemon) -> None:
    line = next((line for line in fenced.output().splitlines() if "sandbox:" in line), "")
    index = socket.getaddrinfo("pypi.org", 443, type=socket.SOCK_STREAM)[0][4][0]
    assert "builds reach only DNS (" in line and f"{index}/32:443" in line and "192.0.2.0/24:8443" in line, line
    table = subprocess.run(
        ["nft", "list", "table", "inet", table_name(fenced.home)], capture_output=True, text=True, check=True
    ).stdout
    assert f"meta skgid {uid_range()[0] - 1} jump build_net" in table, table  # one below the uid range
    assert "ip daddr 192.0.2.0/24 tcp dport 8443 accept" in table, table


def test_a_malformed_build_allow_stops_the_start(tmp_path: Path) -> None:
    daemon = spawn(tmp_path / "home", "--build-allow", "not a host")
    try:
        assert daemon.wait_exit() != 0
        assert "'not a host' is not HOST[:PORT]" in daemon.output(), daemon.output()[-2000:]
    finally:
        daemon.stop()


def test_instance_ports_come_from_the_range(ports: dict[str, int]) -> None:
    assert all(PORT_FIRST <= port <= PORT_LAST for port in ports.values()), ports


def test_no_instance_port_answers_from_another_host(fenced: Daemon, ports: dict[str, int], outside: Outside) -> None:
    assert outside.connect(outside.host_v4, fenced.edge_port) == "ok"  # the way in works
    edge = httpx.get(f"http://{outside.host_v4}:{fenced.edge_port}/", headers={"Host": "wide4.localhost"}, timeout=10)
    assert edge.status_code == 200 and edge.json()["app"] == "wide4"
    closed = {
        "0.0.0.0 over IPv4": outside.connect(outside.host_v4, ports["wide4"]),
        ":: over IPv4": outside.connect(outside.host_v4, ports["wide6"]),
        ":: over IPv6": outside.connect(outside.host_v6, ports["wide6"]),
    }
    assert all(result == "timeout" for result in closed.values()), closed
    assert outside.connect(outside.host_v6, fenced.edge_port) in ("ok", "ECONNREFUSED")  # path works at all
    assert get(fenced, "wide6.localhost").json()["app"] == "wide6"


def test_another_app_cannot_reach_instances_or_the_admin_api(
    fenced: Daemon, ports: dict[str, int], outside: Outside
) -> None:
    """The spy tries loopback over IPv4 and IPv6 and one of this host's other addresses."""
    api_port = int(fenced.api_url.rsplit(":", 1)[1])
    with socket.socket() as local_service:  # a local service (a database, say) the apps may still use
        local_service.bind(("127.0.0.1", 0))
        local_service.listen()
        service_port = local_service.getsockname()[1]
        wanted = [ports["wide4"], ports["wide6"], api_port, service_port]
        params = {"ports": ",".join(map(str, wanted)), "outside": outside.host_v4}
        seen = get(fenced, "spy.localhost", f"/?{httpx.QueryParams(params)}").json()
    assert {ports["wide4"], ports["wide6"], api_port} <= set(seen["listening"]), seen  # it can see them...
    results = seen["results"]
    for port in (ports["wide4"], ports["wide6"], api_port):
        for host in ("127.0.0.1", "::1", outside.host_v4):
            assert results[f"{host} {port}"] == "ECONNREFUSED", (host, port, json.dumps(results, indent=1))
    assert results[f"127.0.0.1 {service_port}"].startswith("connected"), results  # ...other local services stay open
    for app in ("wide4", "wide6"):  # the neighbours serve through the edge, which strips the forged header
        answer = get(fenced, f"{app}.localhost", headers={"X-Roost-Cron": "forged"}).json()
        assert answer == {"app": app, "cron": None}


def test_serve_refuses_an_edge_port_inside_the_instance_range(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
    result = run_cli(
        home, "serve", "--home", str(home), "--port", str(port), "--api-port", "0",
        "--instance-ports", f"{port}-{port}", timeout=30,
    )  # fmt: skip
    assert result.returncode != 0
    text = " ".join(result.stderr.split())
    assert f"the edge port {port} lies in the instance port range" in text and "hint:" in text, result.stderr


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("80-90", "--instance-ports '80-90' is not a usable range of ports"),
        ("30000-20000", "is not a usable range of ports"),
        ("20000", "--instance-ports '20000' is not a range of ports"),
        ("a-b", "is not a range of ports"),
    ],
)
def test_serve_refuses_an_unusable_instance_range(tmp_path: Path, value: str, said: str) -> None:
    home = tmp_path / "home"
    result = run_cli(home, "serve", "--home", str(home), "--instance-ports", value, timeout=30)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    text = " ".join(result.stderr.split())
    assert said in text and "hint:" in text, result.stderr
    assert not home.exists()
