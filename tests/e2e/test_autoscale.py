"""The autoscaler end to end, with short windows: load raises the instance count to what the
target implies (never above max), and when the load stops the count falls back to zero; the
host memory budget stops idle instances of other apps, then sheds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.apps import EXAMPLES, get, info, pushed, wait_until, write_app
from tests.e2e.harness import Daemon, running

FAST_WINDOWS = ("--scale-window", "4s", "--scale-panic-window", "1s", "--scale-down-delay", "2s")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("autoscale") / "home"
    home.mkdir()
    with running(home, *FAST_WINDOWS) as started:
        yield started


def live(daemon: Daemon, app: str) -> list[dict[str, Any]]:
    return [i for i in info(daemon, app)["instances"] if i["state"] in ("starting", "ready")]


def events(daemon: Daemon, app: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(daemon.cli("events", app, "--json", "-n", "1000").stdout)
    return found


class Load:
    """`clients` threads each sending requests back to back until stopped."""

    def __init__(self, daemon: Daemon, host: str, path: str, clients: int) -> None:
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self._threads = [
            threading.Thread(target=self._client, args=(daemon.edge_url, host, path), daemon=True)
            for _ in range(clients)
        ]

    def _client(self, url: str, host: str, path: str) -> None:
        with httpx.Client(base_url=url, headers={"Host": host}, timeout=30) as client:
            while not self.stop.is_set():
                self.statuses.append(client.get(path).status_code)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def load_to_peak(daemon: Daemon, app: str, maximum: int) -> list[int]:
    """12 clients at concurrency 2 want 6 instances: the count must reach `maximum` and stay there."""
    peak = 0
    with Load(daemon, f"{app}.localhost", "/slow?ms=200", clients=12) as load:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and peak < maximum:
            peak = max(peak, len(live(daemon, app)))
            time.sleep(0.2)
        assert peak == maximum, f"12 clients at concurrency 2 should reach max={maximum}, saw {peak}"
        for _ in range(10):  # stays capped while the load goes on
            assert len(live(daemon, app)) <= maximum
            time.sleep(0.2)
    return load.statuses


def test_function_scales_up_to_max_and_sleeps_after_its_idle_time(daemon: Daemon) -> None:
    pushed(daemon, EXAMPLES / "fastapi-hello", "--name", "scaled-fn")
    changed = daemon.cli("scale", "scaled-fn", "--concurrency", "2", "--max", "3", "--idle-timeout", "2s")
    assert changed.returncode == 0, changed.stderr
    assert "roost scale" in changed.stdout
    statuses = load_to_peak(daemon, "scaled-fn", 3)
    assert statuses and all(status == 200 for status in statuses), set(statuses)
    wait_until("scaled-fn asleep", lambda: not live(daemon, "scaled-fn"), timeout=40)
    woke = get(daemon, "scaled-fn.localhost")
    assert woke.status_code == 200
    assert woke.headers["x-roost-start"] in ("warm", "cold")


def test_service_scales_down_after_the_delay_when_demand_falls(daemon: Daemon) -> None:
    pushed(daemon, EXAMPLES / "fastapi-hello", "--name", "scaled-svc", "--mode", "service")
    assert daemon.cli("scale", "scaled-svc", "--concurrency", "2", "--max", "3", "--idle-timeout", "5m").returncode == 0
    statuses = load_to_peak(daemon, "scaled-svc", 3)
    assert all(status == 200 for status in statuses), set(statuses)
    with Load(daemon, "scaled-svc.localhost", "/slow?ms=200", clients=1):  # demand 1: one instance is enough
        wait_until("scaled-svc down to 1", lambda: len(live(daemon, "scaled-svc")) == 1, timeout=40)
    downs = [e for e in events(daemon, "scaled-svc") if e["kind"] == "scale" and e["data"]["to"] < e["data"]["from"]]
    assert downs and downs[-1]["data"]["to"] == 1, downs
    assert "demand fell" in downs[-1]["data"]["reason"]
    assert "scaled-svc" in daemon.cli("info", "scaled-svc").stdout


def test_scale_settings_survive_a_push_and_are_checked(daemon: Daemon) -> None:
    pushed(daemon, EXAMPLES / "handler-hello", "--name", "kept")
    assert daemon.cli("scale", "kept", "--max", "4").returncode == 0
    pushed(daemon, EXAMPLES / "handler-hello", "--name", "kept")
    details = info(daemon, "kept")
    assert details["settings"]["scale"]["max"] == 4
    assert details["sources"]["scale.max"] == "roost scale"
    assert details["sources"]["scale.concurrency"] == "default"
    bad = daemon.cli("scale", "kept", "--min", "9")
    assert bad.returncode == 1
    assert "scale.min" in bad.stderr and "scale.max" in bad.stderr
    assert info(daemon, "kept")["settings"]["scale"]["min"] == 0


SLOW_HANDLER = """
import time

def handler(request):
    time.sleep(float(request.query.get("s", "0")))
    return "ok"
"""


def test_memory_budget_evicts_idle_instances_then_sheds(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    toml = 'name = "{name}"\nentrypoint = "handler:handler"\n[limits]\nmemory = "128M"\ntimeout = "20s"\n'
    with running(home, "--memory-budget", "256M") as own:
        for name in ("first", "second", "third"):
            app = write_app(tmp_path, name, {"roost.toml": toml.format(name=name), "handler.py": SLOW_HANDLER})
            pushed(own, app)
        assert get(own, "first.localhost").status_code == 200
        assert get(own, "second.localhost").status_code == 200
        third = get(own, "third.localhost")  # no room: the least recently used idle one (first) makes way
        assert third.status_code == 200
        assert live(own, "first") == []
        assert any("make room for third" in e["message"] for e in info(own, "first")["events"])
        busy = [threading.Thread(target=get, args=(own, f"{n}.localhost", "/?s=6")) for n in ("second", "third")]
        for thread in busy:
            thread.start()
        wait_until("both busy", lambda: all(i["in_flight"] for n in ("second", "third") for i in live(own, n)))
        shed = get(own, "first.localhost")  # nothing idle to stop: shed
        assert shed.status_code == 503, shed.text
        assert shed.headers["retry-after"]
        for thread in busy:
            thread.join(timeout=30)
