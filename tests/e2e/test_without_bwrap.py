"""A real `roost serve` on a host without bubblewrap (bwrap hidden from its PATH): as root the
apps run as their own uids, so the interpreter (pyenv under a 0700 /root on this machine),
Roost's runner and the home must still be reachable to them; deploys of an entrypoint app
and a command app answer through the edge. As another user the same pushes simply work."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roost.runtime.sandbox.reveal import BASE_PYTHON
from tests.e2e.apps import get, info, pushed, wait_until, write_app
from tests.e2e.harness import REPO, Daemon, base_env, launch

PATH_WITHOUT_BWRAP = "/usr/local/sbin:/usr/local/bin:/usr/sbin"  # bwrap lives in /usr/bin (and /bin)
HANDLER = 'entrypoint = "main:handler"\nmode = "function"\n'
COMMAND = 'command = "python server.py"\nmode = "service"\n'
SERVER = (REPO / "examples" / "command-hello" / "server.py").read_text()
PROBE = """
import os, sys


def handler(request):
    pid = request.query.get("pid")
    seen = {"uid": os.getuid(), "python": os.path.realpath(sys.executable)}
    return {**seen, "cmdline": _read(f"/proc/{pid}/cmdline"), "environ": _read(f"/proc/{pid}/environ")}


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError as exc:
        return type(exc).__name__
"""


def hidden_from_others(path: Path) -> Path | None:
    """The first directory above `path` that a user other than its owner cannot enter, if any."""
    for parent in reversed(path.parents):
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


@pytest.fixture(scope="module")
def without_bwrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("nobwrap")
    home = root / "home"
    home.mkdir()
    argv = ["env", f"PATH={PATH_WITHOUT_BWRAP}", sys.executable, "-m", "roost", "serve", "--home", str(home)]
    argv += ["--host", "127.0.0.1", "--port", "0", "--api-port", "0", "--uid-range", "312000-312999"]
    daemon = launch(argv, home)
    try:
        daemon.wait_ready()
        yield daemon
    finally:
        daemon.stop()


def test_the_daemon_says_it_has_no_bubblewrap(without_bwrap: Daemon) -> None:
    line = next((line for line in without_bwrap.output().splitlines() if "sandbox:" in line), "")
    assert "no bubblewrap" in line, without_bwrap.output()[-2000:]
    builds = next((line for line in without_bwrap.output().splitlines() if "builds:" in line), "")
    assert "no bubblewrap (the home is closed by its modes only" in builds, without_bwrap.output()[-2000:]
    said = "as their app's uid" if os.geteuid() == 0 else f"as uid {os.geteuid()} like the daemon (not root"
    assert said in builds, builds


def test_an_entrypoint_app_answers_as_its_own_uid(without_bwrap: Daemon, tmp_path: Path) -> None:
    pushed(without_bwrap, write_app(tmp_path, "plain", {"roost.toml": HANDLER, "main.py": PROBE}))
    seen = get(without_bwrap, "plain.localhost", f"/?pid={without_bwrap.proc.pid}").json()
    if os.geteuid() == 0:
        assert 312000 <= seen["uid"] <= 312999, seen
        # its /proc shows only its own uid's processes: not the daemon's command line (home, ports)
        assert seen["cmdline"] == seen["environ"] == "FileNotFoundError", seen
    else:
        assert seen["uid"] == os.geteuid(), seen
    # the interpreter venvs are made from; on this machine (pyenv as root) under the 0700 /root
    assert Path(seen["python"]) == BASE_PYTHON.resolve(), seen
    if os.geteuid() == 0:
        assert hidden_from_others(without_bwrap.home) is not None  # pytest's 0700 folder: the view was needed


def test_info_reads_back_what_an_instance_got_without_bubblewrap(without_bwrap: Daemon, tmp_path: Path) -> None:
    pushed(without_bwrap, write_app(tmp_path, "readback", {"roost.toml": HANDLER, "main.py": PROBE}))

    def read() -> dict[str, Any] | None:
        get(without_bwrap, "readback.localhost", "/?pid=1")  # a function: a request keeps an instance
        ready = [i for i in info(without_bwrap, "readback")["instances"] if i["state"] == "ready" and i["isolation"]]
        return ready[0]["isolation"] if ready else None

    isolation = wait_until("the instance's read-back", read, timeout=60)
    assert isolation["seccomp"]["mode"] == "filter" and isolation["identity"]["no_new_privs"], isolation
    views = {view["label"]: view for view in isolation["filesystem"]["paths"]}
    assert views["code"]["readable"] and not views["code"]["writable"], views  # the launcher's read-only view
    assert views["tmp"]["seen"] == "host", views  # no bwrap: no private /tmp (TMPDIR is a directory instead)
    for label in ("store", "secret key"):
        assert not (views[label]["seen"] == "host" and (views[label]["readable"] or views[label]["writable"])), views
    if os.geteuid() == 0:
        assert 312000 <= isolation["identity"]["uid"][1] <= 312999, isolation["identity"]
        assert isolation["filesystem"]["own_mount_namespace"], isolation["filesystem"]  # the launcher's view
        assert isolation["proc"]["hidepid"] == "invisible", isolation["proc"]


def test_a_command_app_answers(without_bwrap: Daemon, tmp_path: Path) -> None:
    pushed(without_bwrap, write_app(tmp_path, "cmd", {"roost.toml": COMMAND, "server.py": SERVER}))
    answer = get(without_bwrap, "cmd.localhost", "/x")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"hello": "from a command app", "path": "/x"}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs apps as other uids")
def test_serve_refuses_to_start_when_no_view_can_be_made(tmp_path: Path) -> None:
    """As in a container without CAP_SYS_ADMIN: no mount namespace, so an app's uid could not
    reach the home (in pytest's 0700 folder) or, here, the interpreter under the 0700 /root.
    The daemon must not start and then fail every deploy: it refuses, and says why and how."""
    home = tmp_path / "home"
    assert hidden_from_others(home) is not None  # pytest's base folder is 0700
    argv = ["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", "env", f"PATH={PATH_WITHOUT_BWRAP}"]
    argv += [sys.executable, "-m", "roost", "serve", "--home", str(home), "--port", "0", "--api-port", "0"]
    argv += ["--uid-range", "313000-313999"]
    result = subprocess.run(argv, env=base_env(home), capture_output=True, text=True, timeout=60, check=False)
    text = " ".join(result.stderr.split())
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "roost is ready" not in result.stdout
    assert f"the interpreter {BASE_PYTHON}" in text, text
    assert "no bubblewrap" in text and "apt-get install bubblewrap" in text, text
    assert "hint:" in text and "CAP_SYS_ADMIN" in text, text
