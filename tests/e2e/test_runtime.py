"""The runtime end to end: services and functions, crash restarts, stop/start, and a clean exit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.apps import ANSWERS, EXAMPLES, get, info, pushed, ready_instances, wait_until, write_app
from tests.e2e.harness import Daemon, leftover_instances, module_daemon, running

FLIPPED = {
    "flask-hello": "service",
    "fastapi-hello": "service",
    "django-hello": "service",
    "handler-hello": "function",
    "command-hello": "function",
}


daemon = module_daemon("runtime")


def events_of(daemon: Daemon, app: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = info(daemon, app)["events"]
    return found


@pytest.mark.parametrize("name", sorted(FLIPPED))
def test_each_example_in_the_other_mode(daemon: Daemon, name: str) -> None:
    """roost.toml says one mode; --mode flips it, and the app still serves."""
    mode = FLIPPED[name]
    app = f"{name.split('-')[0]}-{mode}"
    pushed(daemon, EXAMPLES / name, "--name", app, "--mode", mode)
    host = f"{app}.localhost"
    if mode == "service":
        up = wait_until(f"{app} to keep an instance", lambda: ready_instances(daemon, app))
        assert len(up) == 1
        first = get(daemon, host)
        assert first.headers["x-roost-start"] == "hot"
    else:
        assert ready_instances(daemon, app) == []
        first = get(daemon, host)
        assert first.headers["x-roost-start"] in ("cold", "warm")
        assert get(daemon, host).headers["x-roost-start"] == "hot"
    assert first.status_code == 200
    assert ANSWERS[name] in first.text


def test_zygote_fork_is_warm_and_preload_false_is_cold(daemon: Daemon, tmp_path: Path) -> None:
    app = tmp_path / "coldapp"
    shutil.copytree(EXAMPLES / "handler-hello", app)
    pushed(daemon, app, "--name", "warmfn")
    wait_until("warmfn's zygote", lambda: [e for e in events_of(daemon, "warmfn") if e["kind"] == "zygote.started"])
    assert get(daemon, "warmfn.localhost").headers["x-roost-start"] == "warm"
    toml = app / "roost.toml"
    toml.write_text(toml.read_text().replace('"handler-hello"', '"coldfn"') + "preload = false\n")
    pushed(daemon, app)
    assert get(daemon, "coldfn.localhost").headers["x-roost-start"] == "cold"


def test_a_promote_drains_the_old_instances_without_failing_a_request(daemon: Daemon, tmp_path: Path) -> None:
    """Old instances drain once the new deployment has a ready one (not after idle_timeout), no
    request fails meanwhile, and a rollback right after forks from the old deployment's kept zygote."""
    app = tmp_path / "handover"
    shutil.copytree(EXAMPLES / "flask-hello", app)
    toml = app / "roost.toml"
    toml.write_text(toml.read_text().replace('"flask-hello"', '"handover"').replace('"function"', '"service"'))
    pushed(daemon, app)
    old = wait_until("the first deployment's instance", lambda: ready_instances(daemon, "handover"))[0]
    statuses: list[int] = []
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            statuses.append(get(daemon, "handover.localhost").status_code)

    loader = threading.Thread(target=load, name="load")
    loader.start()
    try:
        wait_until("requests before the promote", lambda: len(statuses) >= 5)
        toml.write_text(toml.read_text().replace('GREETING = "hi"', 'GREETING = "again"'))
        pushed(daemon, app)

        def old_stopped() -> list[dict[str, Any]]:
            mine = [i for i in info(daemon, "handover")["instances"] if i["id"] == old["id"]]
            return [i for i in mine if i["state"] == "stopped"]

        stopped = wait_until("the old instance to drain", old_stopped, timeout=60)  # idle_timeout is 5 min
        assert "left production" in stopped[0]["reason"], stopped
        seen = len(statuses)
        wait_until("requests after the hand-over", lambda: len(statuses) >= seen + 5)
    finally:
        done.set()
        loader.join()
    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert "(again)" in get(daemon, "handover.localhost").text
    assert daemon.cli("rollback", "handover").returncode == 0
    back = [i for i in ready_instances(daemon, "handover") if i["deployment"] == old["deployment"]]
    assert back and back[0]["start_kind"] == "fork", back  # the kept zygote: no full import
    assert "(hi)" in get(daemon, "handover.localhost").text


def test_sigkill_of_an_instance_brings_a_new_one(daemon: Daemon, tmp_path: Path) -> None:
    app = tmp_path / "victim"
    shutil.copytree(EXAMPLES / "command-hello", app)
    pushed(daemon, app, "--name", "victim")
    before = wait_until("victim's instance", lambda: ready_instances(daemon, "victim"))[0]
    os.kill(before["pid"], signal.SIGKILL)

    def replaced() -> list[dict[str, Any]]:
        return [i for i in ready_instances(daemon, "victim") if i["pid"] != before["pid"]]

    after = wait_until("a new instance of victim", replaced, timeout=30)
    assert after[0]["id"] != before["id"]
    assert get(daemon, "victim.localhost").status_code == 200
    crashed = [e for e in events_of(daemon, "victim") if "SIGKILL" in e["message"]]
    assert crashed, events_of(daemon, "victim")


CRASHER = """
import os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

class Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        print("lost my database connection", flush=True)
        os._exit(3)

HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Ok).serve_forever()
"""


def test_a_crashing_app_backs_off_and_says_why(daemon: Daemon, tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "crasher",
        {"roost.toml": 'name = "crasher"\ncommand = "python server.py"\nmode = "service"\n', "server.py": CRASHER},
    )
    pushed(daemon, app)
    for _ in range(3):  # each answer kills the instance; the runtime restarts it, more slowly each time
        wait_until("crasher to be up again", lambda: ready_instances(daemon, "crasher"), timeout=30)
        get(daemon, "crasher.localhost")

    def crash_events() -> list[dict[str, Any]]:
        return [e for e in events_of(daemon, "crasher") if "exited with status 3" in e["message"]]

    crashes = wait_until("crash events", crash_events)
    assert any("lost my database connection" in e["message"] for e in crashes), crashes

    def state_of_crasher() -> str | None:
        listed = json.loads(daemon.cli("list", "--json").stdout)
        state: str = next(a["state"] for a in listed if a["name"] == "crasher")
        return state if state == "crash-looping" else None

    wait_until("crasher to be listed as crash-looping", state_of_crasher)
    row = next(line for line in daemon.cli("list").stdout.splitlines() if line.split()[:1] == ["crasher"])
    assert row.split()[2] == "crash-looping", row  # the STATE column, as people read it
    crashed = [i for i in info(daemon, "crasher")["instances"] if i["state"] == "crashed"]
    assert crashed and all("exited with status 3" in i["reason"] for i in crashed), crashed
    assert any(i["reason"].startswith("crash-looping") for i in crashed), crashed
    restarts = [e for e in events_of(daemon, "crasher") if e["kind"] == "instance.backoff"]
    delays = [float(e["data"]["delay"]) for e in restarts]
    assert delays == sorted(delays) and delays[-1] > delays[0], restarts


def test_no_auto_restart_leaves_a_crashed_service_down(daemon: Daemon, tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "fragile",
        {"roost.toml": 'name = "fragile"\ncommand = "python server.py"\nmode = "service"\n', "server.py": CRASHER},
    )
    pushed(daemon, app, "--no-auto-restart")
    wait_until("fragile up", lambda: ready_instances(daemon, "fragile"))
    get(daemon, "fragile.localhost")  # answers, then exits with status 3

    def told() -> list[dict[str, Any]]:
        return [e for e in events_of(daemon, "fragile") if e["kind"] == "instance.not_restarted"]

    assert "auto_restart is off" in wait_until("the not-restarted event", told)[0]["message"]
    assert ready_instances(daemon, "fragile") == []
    assert not [e for e in events_of(daemon, "fragile") if e["kind"] == "instance.backoff"]
    assert daemon.cli("restart", "fragile").returncode == 0
    wait_until("fragile up again", lambda: ready_instances(daemon, "fragile"))


def test_stop_start_and_restart(daemon: Daemon, tmp_path: Path) -> None:
    app = tmp_path / "toggled"
    shutil.copytree(EXAMPLES / "command-hello", app)
    pushed(daemon, app, "--name", "toggled")
    first = wait_until("toggled up", lambda: ready_instances(daemon, "toggled"))[0]
    assert daemon.cli("stop", "toggled").returncode == 0
    stopped = get(daemon, "toggled.localhost")
    assert stopped.status_code == 503
    assert "stopped" in stopped.text
    assert ready_instances(daemon, "toggled") == []
    assert daemon.cli("start", "toggled").returncode == 0
    second = wait_until("toggled up again", lambda: ready_instances(daemon, "toggled"))[0]
    assert get(daemon, "toggled.localhost").status_code == 200
    assert daemon.cli("restart", "toggled").returncode == 0

    def replaced() -> list[dict[str, Any]]:
        return [i for i in ready_instances(daemon, "toggled") if i["id"] != second["id"]]

    third = wait_until("toggled restarted", replaced)[0]
    assert len({first["pid"], second["pid"], third["pid"]}) == 3


def test_stopping_the_daemon_leaves_no_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with running(home) as own:
        pushed(own, EXAMPLES / "command-hello")
        pushed(own, EXAMPLES / "handler-hello")
        assert get(own, "handler-hello.localhost").status_code == 200
        assert leftover_instances(home), "expected live instances while the daemon runs"
        own.signal(signal.SIGTERM)
        assert own.wait_exit() == 0
        assert leftover_instances(home) == []


def test_a_killed_daemon_leaves_no_stray_after_the_next_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with running(home) as first:
        pushed(first, EXAMPLES / "command-hello")
        pushed(first, EXAMPLES / "handler-hello")
        assert get(first, "handler-hello.localhost").status_code == 200
        before = set(leftover_instances(home))
        assert before
        first.signal(signal.SIGKILL)
        first.wait_exit()
        assert set(leftover_instances(home)) & before, "SIGKILL of the daemon alone does not stop instances"
        with running(home) as second:
            assert not set(leftover_instances(home)) & before
            wait_until("the service back", lambda: ready_instances(second, "command-hello"))
            assert get(second, "handler-hello.localhost").status_code == 200
