"""`limits.network = "none"` without bubblewrap: as root the launcher itself gives the process a
private network namespace with only loopback up, and the socket Roost bound outside still serves;
when nothing can provide it, the sandbox says so (once per deployment) instead of ignoring it."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from roost.model import AppConfig, AppName, LimitsConfig, Network, new_deployment_id
from roost.runtime.protocol import DeploymentSpec
from roost.runtime.sandbox import Sandbox, SandboxSettings
from roost.runtime.sandbox.confine import LAUNCHER, Confinement, LauncherPlan
from roost.runtime.sandbox.sandbox import Facilities

INSIDE = """
import errno, json, os, socket, sys
listener = socket.socket(fileno=int(sys.argv[1]))
seen = {"net": os.readlink("/proc/self/ns/net"), "interfaces": sorted(n for _, n in socket.if_nameindex())}
with socket.socket() as own:  # loopback works inside
    own.bind(("127.0.0.1", 0)); own.listen()
    with socket.create_connection(own.getsockname(), timeout=5):
        seen["own_loopback"] = "ok"
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5).close()
    seen["host_port"] = "ok"
except OSError as exc:
    seen["host_port"] = errno.errorcode.get(exc.errno, str(exc))
connection, _ = listener.accept()  # the socket handed in serves from outside
connection.sendall(json.dumps(seen).encode()); connection.close()
"""


def test_the_launcher_gives_a_private_network_and_the_handed_socket_still_serves() -> None:
    if os.geteuid() != 0:
        pytest.skip("a network namespace without bubblewrap needs root (the launcher does it only as root)")
    with socket.socket() as handed, socket.socket() as host_only:
        handed.bind(("127.0.0.1", 0))
        handed.listen()
        host_only.bind(("127.0.0.1", 0))
        host_only.listen()
        plan = LauncherPlan(netns=True)
        confinement = Confinement(plan, None)
        argv = confinement.command(
            [sys.executable, "-c", INSIDE, str(handed.fileno()), str(host_only.getsockname()[1])]
        )
        assert argv[3] == str(LAUNCHER) and json.loads(argv[4])["netns"] is True
        child = subprocess.Popen(argv, pass_fds=[handed.fileno()], stderr=subprocess.PIPE)
        try:
            with socket.create_connection(handed.getsockname(), timeout=30) as client:
                client.settimeout(30)
                seen = json.loads(b"".join(iter(lambda: client.recv(65536), b"")))
            assert child.wait(timeout=30) == 0, child.stderr.read() if child.stderr else ""
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stderr:
                child.stderr.close()
    assert seen["net"] != os.readlink("/proc/self/ns/net"), seen
    assert seen["interfaces"] == ["lo"], seen
    assert seen["own_loopback"] == "ok", seen
    assert seen["host_port"] == "ECONNREFUSED", seen  # the host's 127.0.0.1 is another loopback


def spec(tmp_path: Path, network: Network, command: str | None = None) -> DeploymentSpec:
    config = AppConfig(
        entrypoint=None if command else "main:app", command=command, limits=LimitsConfig(network=network)
    )
    return DeploymentSpec(AppName("app"), new_deployment_id(), tmp_path, tmp_path, config, {})


def detected(tmp_path: Path, root: bool, bwrap: str | None = None) -> Sandbox:
    """A sandbox as `detect` would leave it on a host without cgroups or seccomp."""
    sandbox = Sandbox(SandboxSettings(cgroups=False, seccomp=False, separate_users=False), tmp_path / "home")
    sandbox.facilities = Facilities(root=root, bwrap=bwrap, bwrap_version="0.8.0" if bwrap else "")
    return sandbox


def test_as_root_without_bwrap_the_launcher_makes_the_network(tmp_path: Path) -> None:
    sandbox = detected(tmp_path, root=True)
    confinement = sandbox.confine(spec(tmp_path, Network.NONE), "i1", None)
    assert confinement is not None and confinement.plan.netns is True
    host = sandbox.confine(spec(tmp_path, Network.HOST), "i2", None)
    assert host is not None and host.plan.netns is False


def test_with_bwrap_the_view_makes_the_network_not_the_launcher(tmp_path: Path) -> None:
    sandbox = detected(tmp_path, root=True, bwrap="/usr/bin/bwrap")
    confinement = sandbox.confine(spec(tmp_path, Network.NONE), "i1", None)
    assert confinement is not None and confinement.plan.netns is False
    assert confinement.plan.view is not None and confinement.plan.view.network_none is True


def test_when_nothing_can_make_the_network_it_is_said_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="roost.runtime")
    sandbox = detected(tmp_path, root=False)
    none = spec(tmp_path, Network.NONE)
    for instance in ("i1", "i2", "i3"):
        confinement = sandbox.confine(none, instance, None)
        assert confinement is not None and confinement.plan.netns is False
    said = [r.getMessage() for r in caplog.records if "network" in r.getMessage()]
    assert len(said) == 1, said
    assert 'asks for limits.network = "none"' in said[0] and "keeps the host network" in said[0], said


def test_a_command_app_keeps_the_host_network_and_is_told(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="roost.runtime")
    sandbox = detected(tmp_path, root=True)
    confinement = sandbox.confine(spec(tmp_path, Network.NONE, command="python server.py"), "i1", None)
    assert confinement is not None and confinement.plan.netns is False
    assert any("binds $PORT itself" in r.getMessage() for r in caplog.records), caplog.text
