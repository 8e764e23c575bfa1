"""`roost info` says what each instance and build step really got, read back from the running
process: its uid, seccomp, the cgroup limits of roost.toml as the kernel holds them, and its own
filesystem view with the home out of sight. Against a real `roost serve` with every sandbox piece."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.apps import info, pushed, wait_until, write_app
from tests.e2e.harness import Daemon, running

UID_FIRST, UID_LAST = 347000, 347999  # a range no other e2e module uses: daemons may run side by side
MEMORY = 96 * 1024 * 1024
SERVICE = (
    'entrypoint = "main:app"\nmode = "service"\n[scale]\nmin = 1\n[limits]\nmemory = "96M"\npids = 48\ncpu = 0.25\n'
)
APP = "async def app(scope, receive, send):\n    pass\n"
# A command app: its instance's pid is bwrap (root, the host's view), which forks the command.
COMMAND = SERVICE.replace('entrypoint = "main:app"', 'command = "python -m http.server $PORT --bind 127.0.0.1"')
SECRETS = {"home", "store", "secret key"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with two apps: `shop`, whose isolation is read, and `blog`, its neighbour."""
    root = tmp_path_factory.mktemp("isolation")
    home = root / "home"
    home.mkdir()
    with running(home, "--uid-range", f"{UID_FIRST}-{UID_LAST}") as started:
        pushed(started, write_app(root, "blog", {"roost.toml": SERVICE, "main.py": APP}))
        pushed(started, write_app(root, "shop", {"roost.toml": SERVICE, "main.py": APP}))
        pushed(started, write_app(root, "static", {"roost.toml": COMMAND, "index.html": "hello"}))
        yield started


def read_back(daemon: Daemon, app: str) -> dict[str, Any]:
    """The first ready instance of `app` once the daemon has read its isolation."""

    def ready() -> dict[str, Any] | None:
        found = [i for i in info(daemon, app)["instances"] if i["state"] == "ready" and i["isolation"]]
        return found[0] if found else None

    return wait_until(f"a ready instance of {app} with its isolation", ready, timeout=60)


@pytest.mark.parametrize("app", ["shop", "static"])
def test_info_reports_what_the_instance_really_got(daemon: Daemon, app: str) -> None:
    instance = read_back(daemon, app)
    isolation = instance["isolation"]
    assert isolation["errors"] == [], isolation
    if app == "shop":
        assert isolation["pid"] == instance["pid"], isolation  # forked from the zygote: the app itself
    else:
        assert isolation["command"].endswith("python"), isolation  # the command, not its wrappers
    identity = isolation["identity"]
    if os.geteuid() == 0:
        assert UID_FIRST <= identity["uid"][1] <= UID_LAST, identity  # the app's own uid, from --uid-range
    assert identity["uid"][1] != 0 and identity["capabilities"] == 0 and identity["no_new_privs"], identity
    assert isolation["seccomp"]["mode"] == "filter", isolation["seccomp"]
    cgroup = isolation["cgroup"]
    assert cgroup["version"] in ("v1", "v2"), cgroup
    assert (cgroup["memory_max"], cgroup["pids_max"], cgroup["cpu_max"]) == (MEMORY, 48, 0.25), cgroup
    views = {view["label"]: view for view in isolation["filesystem"]["paths"]}
    assert views["code"]["seen"] == "host" and views["code"]["readable"] and not views["code"]["writable"], views
    assert views["tmp"]["seen"] == "other" and views["tmp"]["writable"], views  # a private /tmp
    assert not [label for label in SECRETS | {"app blog"} if views[label]["seen"] == "host"], views
    if shutil.which("bwrap"):
        assert isolation["filesystem"]["own_mount_namespace"], isolation["filesystem"]
    if os.geteuid() == 0:
        assert isolation["proc"]["hidepid"] == "invisible", isolation["proc"]
        assert isolation["network"]["firewall_covers"], isolation["network"]
    assert any(line.startswith(f"uid {identity['uid'][1]} ") for line in instance["isolation_summary"])


def test_info_shows_it_in_a_table(daemon: Daemon) -> None:
    instance = read_back(daemon, "shop")
    result = daemon.cli("info", "shop")
    assert result.returncode == 0, result.stderr
    row = next(
        (line for line in result.stdout.splitlines() if line.startswith(instance["id"][:8]) and "filter" in line), ""
    )
    assert str(instance["isolation"]["identity"]["uid"][1]) in row, result.stdout
    assert "mem 96M" in row and "pids 48" in row and "home hidden" in row, result.stdout
    steps = [s for s in info(daemon, "shop")["builds"] if s["deployment"] == instance["deployment"]]
    assert steps, "no build step of the current deployment was read back"
    build_rows = [line for line in result.stdout.splitlines() if line.startswith(instance["deployment"])]
    assert any(steps[0]["step"] in line for line in build_rows), result.stdout


def test_info_reports_each_build_step_read_back_while_it_ran(daemon: Daemon) -> None:
    details = info(daemon, "blog")  # the first push: its venv was made, not taken from the cache
    current = details["deployments"][0]["id"]
    steps = [step for step in details["builds"] if step["deployment"] == current]
    assert steps, details["builds"]
    for step in steps:
        isolation = step["isolation"]
        assert isolation["identity"] and isolation["cgroup"] and isolation["filesystem"], step
        assert step["summary"] and step["summary"][0].startswith("uid "), step
        labels = {view["label"] for view in isolation["filesystem"]["paths"]}
        assert {"build dir", "store", "secret key"} <= labels, labels
