"""The autoscaler end to end, with short windows: steady load on a slow endpoint raises the
instance count to what the target implies (ceil(concurrency / target)) and keeps it there, more
load stops at max, and when the load stops the count falls back (to zero for a function) only
after the scale-down delay; the host memory budget stops idle instances of other apps, then sheds."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.apps import EXAMPLES, get, info, pushed, wait_until, write_app
from tests.e2e.harness import Daemon, module_daemon, running

# The delay is longer than the stable window, so that a drain before it can only mean the delay
# was not kept (the window's average alone falls in under WINDOW seconds).
WINDOW, PANIC_WINDOW, DOWN_DELAY = 3.0, 1.0, 5.0
FAST_WINDOWS = (
    *("--scale-window", f"{WINDOW:g}s"),
    *("--scale-panic-window", f"{PANIC_WINDOW:g}s"),
    *("--scale-down-delay", f"{DOWN_DELAY:g}s"),
)
SLOW = "/slow?ms=300"  # slow enough that a client spends nearly all its time in flight
TARGET = 2  # --concurrency: requests in flight per instance
CLOCK_SLACK = 0.25  # the daemon's event times and ours come from the same clock; this covers rounding


daemon = module_daemon("autoscale", *FAST_WINDOWS)


def live(daemon: Daemon, app: str) -> list[dict[str, Any]]:
    """Starting and ready instances, read over the API socket (cheaper than a CLI process per poll)."""
    with daemon.api() as api:
        details = api.get(f"/v1/apps/{app}", params={"events": 0}).json()
    return [i for i in details["instances"] if i["state"] in ("starting", "ready")]


def events(daemon: Daemon, app: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(daemon.cli("events", app, "--json", "-n", "1000").stdout)
    return found


class Load:
    """`clients` threads each sending requests back to back until stopped."""

    def __init__(self, daemon: Daemon, host: str, path: str, clients: int) -> None:
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self.failures: list[str] = []  # a client that failed keeps going: its demand must not vanish unseen
        self.last_done = 0.0  # when a request of this load last ended: its demand falls from then
        self._threads = [
            threading.Thread(target=self._client, args=(daemon.edge_url, host, path), daemon=True)
            for _ in range(clients)
        ]

    def _client(self, url: str, host: str, path: str) -> None:
        with httpx.Client(base_url=url, headers={"Host": host}, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    self.statuses.append(client.get(path).status_code)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                self.last_done = time.time()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def reaches(daemon: Daemon, app: str, count: int, timeout: float = 40) -> list[int]:
    """Poll the live count until it is `count`; every count seen on the way."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while not seen or seen[-1] != count:
        assert time.monotonic() < deadline, f"{app} never reached {count} instances: saw {seen}"
        seen.append(len(live(daemon, app)))
        time.sleep(0.2)
    return seen


def holds(daemon: Daemon, app: str, seconds: float) -> list[int]:
    """Every live count seen over `seconds` of steady load."""
    seen: list[int] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        seen.append(len(live(daemon, app)))
        time.sleep(0.2)
    return seen


def test_function_scales_to_what_the_target_implies_then_to_max_then_to_zero(daemon: Daemon) -> None:
    pushed(daemon, EXAMPLES / "fastapi-hello", "--name", "scaled-fn")
    changed = daemon.cli("scale", "scaled-fn", "--concurrency", str(TARGET), "--max", "5", "--idle-timeout", "2s")
    assert changed.returncode == 0, changed.stderr
    assert "roost scale" in changed.stdout
    host = "scaled-fn.localhost"
    with Load(daemon, host, SLOW, clients=6) as steady:  # concurrency 6 at target 2: ceil(6 / 2) = 3 instances
        on_the_way = reaches(daemon, "scaled-fn", 3)
        assert max(on_the_way) <= 4, on_the_way
        steady_from = time.time()
        # Long enough for both windows to fill with steady demand and a scale-down delay to pass:
        # the autoscaler keeps what the target implies, no more, no less (the activator may have
        # started them, but only the autoscaler would take them away).
        steady_counts = holds(daemon, "scaled-fn", WINDOW + DOWN_DELAY + 2)
        assert min(steady_counts) >= 3 and max(steady_counts) <= 4, steady_counts
        with Load(daemon, host, SLOW, clients=8) as surge:  # 14 > max 5 x target 2: capped at max
            reaches(daemon, "scaled-fn", 5)
            capped = holds(daemon, "scaled-fn", WINDOW)
            assert capped and max(capped) == 5, capped
        load_until = time.time()
    statuses = steady.statuses + surge.statuses
    assert statuses and all(status == 200 for status in statuses), set(statuses)
    decisions = [e for e in events(daemon, "scaled-fn") if e["kind"] == "scale"]
    assert all(e["data"]["to"] <= 5 for e in decisions), decisions
    ups = [e for e in decisions if e["data"]["to"] > e["data"]["from"]]
    assert ups and max(e["data"]["to"] for e in ups) >= 3, f"no scale-up decision was recorded: {decisions}"
    assert all(e["data"]["reason"] for e in ups), ups
    under_load = [e for e in decisions if steady_from <= e["at"] <= load_until and e["data"]["to"] < e["data"]["from"]]
    assert not under_load, f"scaled down under steady load: {under_load}"
    wait_until("scaled-fn asleep", lambda: not live(daemon, "scaled-fn"), timeout=40)
    woke = get(daemon, host)
    assert woke.status_code == 200
    assert woke.headers["x-roost-start"] in ("warm", "cold")


def test_service_scales_down_after_the_delay_when_demand_falls(daemon: Daemon) -> None:
    pushed(daemon, EXAMPLES / "fastapi-hello", "--name", "scaled-svc", "--mode", "service")
    assert (
        daemon.cli("scale", "scaled-svc", "--concurrency", str(TARGET), "--max", "3", "--idle-timeout", "5m").returncode
        == 0
    )
    host = "scaled-svc.localhost"
    with Load(daemon, host, SLOW, clients=1) as rest:  # demand 1: one instance is enough
        with Load(daemon, host, SLOW, clients=7) as peak:  # demand 8 wants 4: capped at 3
            reaches(daemon, "scaled-svc", 3)
            # The activator started those for the waiting requests; the peak stays on until the
            # autoscaler's windows have seen it too, so the drop below is the only one there is.
            held = holds(daemon, "scaled-svc", WINDOW)
            assert set(held) == {3}, held
            peak.stop.set()
        dropped_at = peak.last_done  # the peak's last request ended: demand fell to the rest's 1
        wait_until("scaled-svc down to 1", lambda: len(live(daemon, "scaled-svc")) == 1, timeout=40)
    statuses = rest.statuses + peak.statuses
    assert all(status == 200 for status in statuses), set(statuses)
    assert not rest.failures + peak.failures, rest.failures + peak.failures
    after = [e for e in events(daemon, "scaled-svc") if e["at"] >= dropped_at - CLOCK_SLACK]
    downs = [e for e in after if e["kind"] == "scale" and e["data"]["to"] < e["data"]["from"]]
    drains = [e for e in after if e["kind"] == "instance.draining"]
    assert downs and downs[-1]["data"]["to"] == 1, downs
    assert "demand fell" in downs[-1]["data"]["reason"]
    assert len(drains) == 2, drains  # 3 -> 1
    early = [e for e in downs + drains if e["at"] < dropped_at + DOWN_DELAY - CLOCK_SLACK]
    assert not early, f"drained within {DOWN_DELAY}s of the drop in demand: {early}"
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
