"""A real `roost serve` on a host without bubblewrap (bwrap hidden from its PATH): as root the
apps run as their own uids, so the interpreter (pyenv under a 0700 /root on this machine),
Roost's runner and the home must still be reachable to them; deploys of an entrypoint app
and a command app answer through the edge. As another user the same pushes simply work."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.apps import get, pushed, write_app
from tests.e2e.harness import REPO, Daemon, launch

PATH_WITHOUT_BWRAP = "/usr/local/sbin:/usr/local/bin:/usr/sbin"  # bwrap lives in /usr/bin (and /bin)
HANDLER = 'entrypoint = "main:handler"\nmode = "function"\n'
COMMAND = 'command = "python server.py"\nmode = "service"\n'
SERVER = (REPO / "examples" / "command-hello" / "server.py").read_text()
PROBE = """
import os, sys


def handler(request):
    return {"uid": os.getuid(), "python": os.path.realpath(sys.executable), "cmdline": _read(request.query.get("pid"))}


def _read(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
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
    argv += ["--host", "127.0.0.1", "--port", "0", "--api-port", "0", "--uid-range", "310000-310999"]
    daemon = launch(argv, home)
    try:
        daemon.wait_ready()
        yield daemon
    finally:
        daemon.stop()


def test_the_daemon_says_it_has_no_bubblewrap(without_bwrap: Daemon) -> None:
    line = next((line for line in without_bwrap.output().splitlines() if "sandbox:" in line), "")
    assert "no bubblewrap" in line, without_bwrap.output()[-2000:]


def test_an_entrypoint_app_answers_as_its_own_uid(without_bwrap: Daemon, tmp_path: Path) -> None:
    pushed(without_bwrap, write_app(tmp_path, "plain", {"roost.toml": HANDLER, "main.py": PROBE}))
    seen = get(without_bwrap, "plain.localhost").json()
    if os.geteuid() == 0:
        assert 310000 <= seen["uid"] <= 310999, seen
    else:
        assert seen["uid"] == os.geteuid(), seen
    # the interpreter venvs are made from; on this machine (pyenv as root) under the 0700 /root
    assert Path(seen["python"]) == Path(os.path.realpath(sys.executable)), seen


def test_a_command_app_answers(without_bwrap: Daemon, tmp_path: Path) -> None:
    pushed(without_bwrap, write_app(tmp_path, "cmd", {"roost.toml": COMMAND, "server.py": SERVER}))
    answer = get(without_bwrap, "cmd.localhost", "/x")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"hello": "from a command app", "path": "/x"}


def test_what_this_run_exercised(without_bwrap: Daemon) -> None:
    """Not a condition of the others: records that the interpreter and the home really were
    behind a directory the apps' uids cannot enter (true here as root: /root and pytest's
    0700 base directory), so the two tests above tested the fallback, not an open host."""
    if os.geteuid() != 0:
        pytest.skip("not root: apps keep this user's uid, nothing is hidden from them")
    interpreter = Path(os.path.realpath(sys.executable))
    assert hidden_from_others(without_bwrap.home) is not None or hidden_from_others(interpreter) is not None
