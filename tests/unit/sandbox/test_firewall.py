"""The firewall's rule text, and what it does in a real kernel: applied inside a network
namespace made for the test (so the host's own traffic never meets it), a process under an
app's uid cannot connect to an instance port or to the guarded admin port on any local address,
root (the edge) can, and the app still reaches other local ports."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from roost.runtime.ports import PortRange
from roost.runtime.sandbox import Sandbox, SandboxSettings, firewall
from roost.runtime.sandbox.buildnet import BuildNet, Destination, Endpoint
from roost.runtime.sandbox.firewall import Rules, removal, ruleset, table_name

RULES = Rules(uid_first=200000, uid_last=265535, ports=PortRange(20000, 29999), guarded=(7070, 7070, 7071))
NFT = shutil.which("nft")
needs_nft = pytest.mark.skipif(NFT is None or os.geteuid() != 0, reason="needs root and nft")

PROBE = """
import errno, json, socket, sys
out = {}
for host, port in json.loads(sys.argv[1]):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(5)
        try:
            s.connect((host, port)); out[f"{host} {port}"] = "ok"
        except OSError as exc:
            out[f"{host} {port}"] = errno.errorcode.get(exc.errno or 0, str(exc))
print(json.dumps(out))
"""

SERVE = """
import socket, sys, time
held = []
for port in map(int, sys.argv[1:]):
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port)); s.listen(64); held.append(s)
print("listening", flush=True)
time.sleep(60)
"""


def test_table_names_are_per_home(tmp_path: Path) -> None:
    a, b = table_name(tmp_path / "a"), table_name(tmp_path / "b")
    assert a != b
    assert a.startswith("roost_")
    assert a == table_name(tmp_path / "x" / ".." / "a")


def test_ruleset_closes_the_range_and_the_admin_port_to_app_uids() -> None:
    text = ruleset("roost_t", RULES)
    assert text.startswith("table inet roost_t\ndelete table inet roost_t\n")  # replaced in one transaction
    for dport in ("20000-29999", "7070", "7071"):
        assert (
            f"tcp flags & (syn | ack) == syn tcp dport {dport} meta skuid 200000-265535 fib daddr type local "
            "reject with tcp reset\n"
        ) in text
    assert text.count("reject") == 3  # the guarded port named twice is one rule
    assert 'iif != "lo" tcp flags & (syn | ack) == syn tcp dport 20000-29999 drop' in text
    assert "hook output" in text
    assert "hook input" in text


RAY = PortRange(7300, 7399)
CLUSTER_RULES = replace(RULES, closed=(RAY, PortRange(6380, 6380), RAY))


def test_ruleset_closes_the_clusters_ports_to_app_uids_on_every_address() -> None:
    text = ruleset("roost_t", CLUSTER_RULES)
    apps = text[text.index("chain apps_out") : text.index("chain instances_in")]
    for dport in ("7300-7399", "6380-6380"):
        rule = f"tcp flags & (syn | ack) == syn tcp dport {dport} meta skuid 200000-265535 reject with tcp reset\n"
        assert rule in apps  # no `fib daddr type local`: other machines' addresses too
    assert apps.count("7300-7399") == 1  # a range named twice is one rule
    assert text.count("reject") == 5
    assert "7300" not in ruleset("roost_t", RULES)


def test_removal_deletes_even_a_missing_table() -> None:
    assert removal("roost_t") == "table inet roost_t\ndelete table inet roost_t\n"


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"roostfw{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _in(netns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


@needs_nft
def test_nft_accepts_the_ruleset_and_it_holds_in_a_kernel(netns: str) -> None:
    assert NFT is not None
    table = "roost_unit"
    nft = _in(netns, NFT)
    firewall.apply(ruleset(table, RULES), nft)
    firewall.apply(ruleset(table, RULES), nft)  # replaced, not added to
    listed = subprocess.run([*nft, "list", "table", "inet", table], capture_output=True, text=True, check=True)
    assert listed.stdout.count("reject with tcp reset") == 3
    ports = [20000, 29999, 7070, 30000]
    server = subprocess.Popen(
        _in(netns, sys.executable, "-c", SERVE, *map(str, ports)), stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "listening"
        targets = [[host, port] for host in ("127.0.0.1", "::1") for port in ports]
        as_app = _probe(netns, targets, ["setpriv", "--reuid=200123", "--regid=200123", "--clear-groups"])
        as_root = _probe(netns, targets, [])
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
    for host in ("127.0.0.1", "::1"):
        for port in (20000, 29999, 7070):
            assert as_app[f"{host} {port}"] == "ECONNREFUSED", (host, port, as_app)
            assert as_root[f"{host} {port}"] == "ok"
        assert as_app[f"{host} 30000"] == "ok"  # other local services stay reachable


@pytest.fixture
def other_machine(netns: str) -> Iterator[str]:
    """A second namespace on a link of its own with `netns`: 10.98.0.1 there, 10.98.0.2 here."""
    name = f"roostfw{uuid.uuid4().hex[:8]}"
    here, there = f"{name[7:]}a", f"{name[7:]}b"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "link", "add", here, "type", "veth", "peer", "name", there], check=True)
        subprocess.run(["ip", "link", "set", here, "netns", netns], check=True)
        subprocess.run(["ip", "link", "set", there, "netns", name], check=True)
        for space, link, address in ((netns, here, "10.98.0.1/24"), (name, there, "10.98.0.2/24")):
            subprocess.run(["ip", "-n", space, "addr", "add", address, "dev", link], check=True)
            subprocess.run(["ip", "-n", space, "link", "set", link, "up"], check=True)
            subprocess.run(["ip", "-n", space, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)  # its end of the veth pair goes with it


@needs_nft
def test_the_clusters_ports_are_closed_to_apps_on_this_machine_and_on_others(netns: str, other_machine: str) -> None:
    assert NFT is not None
    firewall.apply(ruleset("roost_unit", CLUSTER_RULES), _in(netns, NFT))
    ports = [7300, 7399, 7400]
    servers = [
        subprocess.Popen(_in(space, sys.executable, "-c", SERVE, *map(str, ports)), stdout=subprocess.PIPE, text=True)
        for space in (netns, other_machine)
    ]
    try:
        for server in servers:
            assert server.stdout is not None
            assert server.stdout.readline().strip() == "listening"
        targets = [[host, port] for host in ("127.0.0.1", "::1", "10.98.0.1", "10.98.0.2") for port in ports]
        as_app = _probe(netns, targets, ["setpriv", "--reuid=200123", "--regid=200123", "--clear-groups"])
        as_build = _probe(netns, targets, ["setpriv", "--reuid=200123", "--regid=199999", "--clear-groups"])
        as_root = _probe(netns, targets, [])
    finally:
        for server in servers:
            server.kill()
            server.wait()
            if server.stdout is not None:
                server.stdout.close()
    for host in ("127.0.0.1", "::1", "10.98.0.1", "10.98.0.2"):
        for port in (7300, 7399):
            assert as_app[f"{host} {port}"] == "ECONNREFUSED", (host, port, as_app)
            assert as_build[f"{host} {port}"] == "ECONNREFUSED", (host, port, as_build)
            assert as_root[f"{host} {port}"] == "ok"  # the daemon's own Ray driver
        assert as_app[f"{host} 7400"] == "ok"  # next door to the block


@needs_nft
def test_removal_leaves_nothing_and_a_refusal_says_why(netns: str) -> None:
    assert NFT is not None
    nft = _in(netns, NFT)
    firewall.apply(ruleset("roost_unit", RULES), nft)
    firewall.apply(removal("roost_unit"), nft)
    firewall.apply(removal("roost_unit"), nft)  # twice: still fine
    listed = subprocess.run([*nft, "list", "tables"], capture_output=True, text=True, check=True)
    assert "roost_unit" not in listed.stdout
    with pytest.raises(firewall.FirewallUnavailable, match="Error"):
        firewall.apply("table inet roost_unit { chain c { type filter hook nowhere priority 0; } }\n", nft)


def _probe(netns: str, targets: list[list[object]], prefix: list[str]) -> dict[str, str]:
    done = subprocess.run(
        _in(netns, *prefix, sys.executable, "-c", PROBE, json.dumps(targets)),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: dict[str, str] = json.loads(done.stdout)
    return result


def _settings(**changes: object) -> SandboxSettings:
    base = SandboxSettings(cgroups=False, bwrap=False, seccomp=False, firewall=True, guarded_ports=(7070,))
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_without_separate_users_the_start_line_says_what_stays_open(tmp_path: Path) -> None:
    sandbox = Sandbox(_settings(separate_users=False), tmp_path / "home")
    await sandbox.detect()
    line = sandbox.summary()
    assert sandbox.facilities.firewall is None
    assert "no firewall: other apps can connect to an instance's port and to the admin API's TCP port" in line, line
    assert "apps share one uid; fix:" in line, line


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only the uids can be told apart")
async def test_without_nft_the_start_line_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firewall, "nft_binary", lambda: None)
    sandbox = Sandbox(_settings(), tmp_path / "home")
    await sandbox.detect()
    assert "no firewall" in sandbox.summary() and "apt-get install nftables" in sandbox.summary()
    await asyncio.to_thread(sandbox.release)  # nothing to remove, and no error


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only the uids can be told apart")
async def test_a_kernel_that_refuses_is_quoted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real program standing in for an nft the kernel answers with EOPNOTSUPP."""
    fake = tmp_path / "nft"
    fake.write_text("#!/bin/sh\necho 'Error: Could not process rule: Operation not supported' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(firewall, "nft_binary", lambda: str(fake))
    sandbox = Sandbox(_settings(), tmp_path / "home")
    await sandbox.detect()
    line = sandbox.summary()
    assert sandbox.facilities.firewall is None
    assert "nft refused: Error: Could not process rule: Operation not supported" in line, line
    assert "fix: modprobe nf_tables" in line, line


BUILD_NET = BuildNet(
    resolvers=("127.0.0.5",),
    destinations=(Destination("127.0.0.2/32", 8443), Destination("127.0.0.6/32", None)),
)
BUILD_RULES = replace(RULES, build_gid=199999, build_net=BUILD_NET)

BUILD_PROBE = """
import errno, json, socket, sys
out = {}
for host, port in json.loads(sys.argv[1]):
    with socket.socket() as s:
        s.settimeout(5)
        try:
            s.connect((host, port)); out[f"tcp {host} {port}"] = "ok"
        except OSError as exc:
            out[f"tcp {host} {port}"] = errno.errorcode.get(exc.errno or 0, str(exc))
for host in json.loads(sys.argv[2]):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        try:
            s.connect((host, 53)); s.send(b"query"); out[f"udp {host} 53"] = s.recv(100).decode()
        except OSError as exc:
            out[f"udp {host} 53"] = errno.errorcode.get(exc.errno or 0, str(exc))
print(json.dumps(out))
"""

BUILD_SERVE = """
import socket, sys, threading, time
held = []
for spec in sys.argv[1:]:
    host, port = spec.split(":")
    s = socket.socket(); s.bind((host, int(port))); s.listen(64); held.append(s)
for host in ("127.0.0.5", "127.0.0.4"):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((host, 53)); held.append(u)
    def echo(u=u):
        while True:
            data, peer = u.recvfrom(100); u.sendto(b"answer", peer)
    threading.Thread(target=echo, daemon=True).start()
print("listening", flush=True)
time.sleep(60)
"""


def test_ruleset_lets_builds_reach_only_dns_and_the_index() -> None:
    text = ruleset("roost_t", BUILD_RULES)
    chain = text[text.index("chain builds_out") : text.index("chain instances_in")]
    assert "!=" not in chain  # a packet without a socket (neighbour discovery) never reaches the refusal
    assert "meta skgid 199999 jump build_net" in chain
    assert "ip daddr 127.0.0.5 udp dport 53 accept" in chain
    assert "ip daddr 127.0.0.5 tcp dport 53 accept" in chain
    assert "ip daddr 127.0.0.2/32 tcp dport 8443 accept" in chain
    assert "ip daddr 127.0.0.6/32 meta l4proto tcp accept" in chain  # --build-allow without a port
    assert chain.index("accept") < chain.index("reject with tcp reset") < chain.index("reject with icmpx")
    assert "builds_out" not in ruleset("roost_t", RULES)  # no build gid, no chain


@needs_nft
def test_a_build_reaches_the_index_and_dns_and_nothing_else(netns: str) -> None:
    """Real sockets in a real kernel: a process of the build gid (as a sandboxed build will be)
    against one of an app's own gid, which the build chain must leave alone."""
    assert NFT is not None
    nft = _in(netns, NFT)
    firewall.apply(ruleset("roost_unit", BUILD_RULES), nft)
    for extra in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"):
        subprocess.run(_in(netns, "ip", "addr", "add", f"{extra}/8", "dev", "lo"), check=False)
    listeners = ["127.0.0.2:8443", "127.0.0.2:8444", "127.0.0.3:8443", "127.0.0.6:9999"]
    server = subprocess.Popen(
        _in(netns, sys.executable, "-c", BUILD_SERVE, *listeners), stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "listening"
        targets = json.dumps([[h, int(p)] for h, p in (entry.split(":") for entry in listeners)])
        resolvers = json.dumps(["127.0.0.5", "127.0.0.4"])
        as_build = _run_probe(
            netns, ["setpriv", "--reuid=200123", "--regid=199999", "--clear-groups"], targets, resolvers
        )
        as_app = _run_probe(
            netns, ["setpriv", "--reuid=200123", "--regid=200123", "--clear-groups"], targets, resolvers
        )
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
    assert as_build["tcp 127.0.0.2 8443"] == "ok", as_build  # the index's address and port
    assert as_build["tcp 127.0.0.6 9999"] == "ok", as_build  # allowed on every port
    assert as_build["tcp 127.0.0.2 8444"] == "ECONNREFUSED", as_build  # the index's host, another port
    assert as_build["tcp 127.0.0.3 8443"] == "ECONNREFUSED", as_build  # another host
    assert as_build["udp 127.0.0.5 53"] == "answer", as_build  # the resolver
    assert as_build["udp 127.0.0.4 53"] in {"EPERM", "EHOSTUNREACH", "ECONNREFUSED"}, as_build  # at once, no timeout
    assert set(as_app.values()) == {"ok", "answer"}, as_app  # instances are not builds


def _run_probe(netns: str, prefix: list[str], targets: str, resolvers: str) -> dict[str, str]:
    done = subprocess.run(
        _in(netns, *prefix, sys.executable, "-c", BUILD_PROBE, targets, resolvers),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, str] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only the uids can be told apart")
async def test_the_start_line_says_what_builds_reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real program standing in for nft keeps the script it is given, so the host's own
    tables stay untouched; the kernel side is the netns test above."""
    kept = tmp_path / "script.nft"
    fake = tmp_path / "nft"
    fake.write_text(f"#!/bin/sh\ncat >> {kept}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(firewall, "nft_binary", lambda: str(fake))
    endpoints = (Endpoint("pypi.org", 443), Endpoint("no-such-host.invalid", None))
    sandbox = Sandbox(_settings(build_gid=199999, build_endpoints=endpoints), tmp_path / "home")
    await sandbox.detect()
    line = sandbox.summary()
    address = socket.getaddrinfo("pypi.org", None, type=socket.SOCK_STREAM)[0][4][0]
    assert "builds reach only DNS (" in line and f"{address}/" in line and "(widen: --build-allow)" in line, line
    assert "builds cannot reach no-such-host.invalid (not resolved at start)" in line, line
    assert "meta skgid 199999 jump build_net" in kept.read_text()
    await asyncio.to_thread(sandbox.release)


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only the uids can be told apart")
async def test_the_start_line_says_the_clusters_ports_are_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real program standing in for nft keeps the script, as above; without nft the line says
    that the apps can reach Ray's ports."""
    kept = tmp_path / "script.nft"
    fake = tmp_path / "nft"
    fake.write_text(f"#!/bin/sh\ncat >> {kept}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(firewall, "nft_binary", lambda: str(fake))
    sandbox = Sandbox(_settings(closed_ports=(PortRange(7300, 7399),)), tmp_path / "home")
    await sandbox.detect()
    assert "apps and builds cannot reach the cluster's Ray ports 7300-7399 on any address" in sandbox.summary()
    assert "tcp dport 7300-7399 meta skuid 200000-265535 reject" in kept.read_text()
    await asyncio.to_thread(sandbox.release)
    monkeypatch.setattr(firewall, "nft_binary", lambda: None)
    bare = Sandbox(_settings(closed_ports=(PortRange(7300, 7399),)), tmp_path / "home2")
    await bare.detect()
    assert "apps can connect to the cluster's Ray ports" in bare.summary()
