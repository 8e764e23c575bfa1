"""Seeing what runs, end to end: `roost list` states and columns, `roost info` instances and
setting sources, and `roost events -f` streaming a new event as it happens."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.e2e.apps import get, info, pushed, wait_until, write_app
from tests.e2e.harness import Daemon, base_env, module_daemon

HANDLER = """
import time

time.sleep(float(open("delay.txt").read()))  # a slow import keeps the build check (so the app) building

def handler(request):
    return "ok"
"""


def make_app(root: Path, name: str, delay: float = 0.0) -> Path:
    toml = f'name = "{name}"\nentrypoint = "handler:handler"\n'
    return write_app(root, name, {"roost.toml": toml, "handler.py": HANDLER, "delay.txt": str(delay)})


def listed(daemon: Daemon) -> dict[str, dict[str, Any]]:
    result = daemon.cli("list", "--json")
    assert result.returncode == 0, result.stderr
    return {app["name"]: app for app in json.loads(result.stdout)}


def state_of(daemon: Daemon, app: str, state: str) -> dict[str, Any] | None:
    row = listed(daemon).get(app)
    return row if row is not None and row["state"] == state else None


daemon = module_daemon("observe")


def test_a_function_sleeps_runs_and_stops(daemon: Daemon, tmp_path: Path) -> None:
    pushed(daemon, make_app(tmp_path, "obs-fn"))
    deployment = json.loads(daemon.cli("deployments", "obs-fn", "--json").stdout)[0]
    row = listed(daemon)["obs-fn"]
    assert row["mode"] == "function"
    assert row["state"] in ("sleeping", "running"), row  # running only while an instance is up
    assert row["production"] == deployment["id"]
    assert 0 < row["production_created_at"] <= time.time()
    assert row["url"] == deployment["url"] and row["url"].startswith("http://obs-fn.localhost:")
    assert get(daemon, "obs-fn.localhost").status_code == 200
    row = wait_until("obs-fn running", lambda: state_of(daemon, "obs-fn", "running"))
    assert row["ready"] == row["instances"] >= 1
    assert row["memory"] > 0
    assert [(t["deployment"], t["weight"]) for t in row["traffic"]] == [(deployment["id"], 100)]
    assert daemon.cli("stop", "obs-fn").returncode == 0
    row = wait_until("obs-fn stopped", lambda: state_of(daemon, "obs-fn", "stopped"))
    assert row["ready"] == 0
    table = daemon.cli("list").stdout
    assert "obs-fn" in table and "stopped" in table and row["url"] in table


def test_a_service_runs_with_its_instance_ready_and_info_shows_it(daemon: Daemon, tmp_path: Path) -> None:
    pushed(daemon, make_app(tmp_path, "obs-svc"), "--mode", "service")
    row = wait_until("obs-svc running 1/1", lambda: state_of(daemon, "obs-svc", "running"))
    assert (row["mode"], row["ready"], row["instances"]) == ("service", 1, 1)
    assert row["memory"] > 0
    details = info(daemon, "obs-svc")
    (instance,) = details["instances"]
    assert instance["state"] == "ready"
    assert isinstance(instance["pid"], int) and Path(f"/proc/{instance['pid']}").exists()
    assert 0 <= instance["uptime"] < 600
    assert instance["memory"] > 0
    assert instance["restarts"] == 0
    assert instance["deployment"] == row["production"]
    sources = details["sources"]
    assert sources["mode"] == "roost push --mode"  # --mode service on the command line
    assert sources["entrypoint"] == "roost.toml"  # make_app's roost.toml sets it
    assert sources["preload"] == "default" and sources["auto_restart"] == "default"
    assert sources["scale.min"] == sources["scale.max"] == "default"
    shown = daemon.cli("info", "obs-svc").stdout
    assert "auto_restart" in shown and "roost push --mode" in shown and str(instance["pid"]) in shown
    assert daemon.cli("scale", "obs-svc", "--max", "4").returncode == 0
    sources = info(daemon, "obs-svc")["sources"]
    assert sources["scale.max"] == "roost scale"  # applied on top of what the push recorded
    assert (sources["mode"], sources["entrypoint"]) == ("roost push --mode", "roost.toml")


def test_a_push_in_progress_shows_as_building(daemon: Daemon, tmp_path: Path) -> None:
    app = make_app(tmp_path, "obs-build", delay=3.0)
    push = subprocess.Popen(
        [sys.executable, "-m", "roost", "push", str(app)],
        env=base_env(daemon.home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=str(tmp_path),
    )
    try:
        wait_until("obs-build building", lambda: state_of(daemon, "obs-build", "building"), every=0.1)
        assert push.wait(timeout=120) == 0
    finally:
        if push.poll() is None:
            push.kill()
            push.wait()
    assert listed(daemon)["obs-build"]["state"] in ("sleeping", "running")


def test_events_follow_streams_a_new_event(daemon: Daemon, tmp_path: Path) -> None:
    pushed(daemon, make_app(tmp_path, "obs-ev"), "--mode", "service")
    wait_until("obs-ev running", lambda: state_of(daemon, "obs-ev", "running"))
    follower = subprocess.Popen(
        [sys.executable, "-m", "roost", "events", "obs-ev", "-f", "--json", "-n", "1"],
        env=base_env(daemon.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(tmp_path),
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout or ()], daemon=True).start()
    try:
        first = json.loads(lines.get(timeout=30))  # the last past event: the stream is open
        assert daemon.cli("restart", "obs-ev").returncode == 0
        deadline = time.monotonic() + 30
        kinds: list[str] = []
        while "app.restarted" not in kinds:
            event = json.loads(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            assert event["id"] > first["id"] and event["app"] == "obs-ev"
            kinds.append(event["kind"])
    finally:
        follower.kill()
        follower.wait(timeout=10)
        for stream in (follower.stdout, follower.stderr):
            if stream is not None:
                stream.close()
