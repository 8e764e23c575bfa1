"""Environment and secrets, cron jobs, start temperature metrics and retention, end to end."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.apps import get, pushed, wait_until, write_app
from tests.e2e.harness import Daemon, module_daemon

SECRET = "s3cr3t-value-4f1c9a"

APP = """
import os

def handler(request):
    if request.path == "/env":
        return {"greeting": os.environ.get("GREETING", ""), "api_key": os.environ.get("API_KEY", "")}
    if request.path == "/headers":
        return dict(request.headers)
    if request.path.startswith("/tasks/"):
        print(f"cron hit {request.method} {request.path} by {request.headers.get('x-roost-cron')}", flush=True)
        return "done"
    return "ok"
"""
TOML = """
name = "{name}"
entrypoint = "handler:handler"
keep = {keep}

[env]
GREETING = "from roost.toml"

[[cron]]
name = "tick"
schedule = "* * * * *"
path = "/tasks/tick"

[[cron]]
name = "report"
schedule = "0 3 * * *"
path = "/tasks/report"
public = true
"""


def events(daemon: Daemon, app: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(daemon.cli("events", app, "--json", "-n", "1000").stdout)
    return found


def make_app(root: Path, name: str, keep: int = 10, crons: bool = True) -> Path:
    """The app; without `crons`, no cron job wakes it (each would start an instance every second here)."""
    toml = TOML.format(name=name, keep=keep)
    toml = toml if crons else toml.partition("\n[[cron]]")[0] + "\n"
    return write_app(root, name, {"roost.toml": toml, "handler.py": APP})


daemon = module_daemon("extras", "--cron-speed", "60")  # a cron minute passes every second


def test_secret_reaches_the_app_by_rolling_restart_and_nowhere_else(daemon: Daemon, tmp_path: Path) -> None:
    pushed(daemon, make_app(tmp_path, "envy"), "--mode", "service")
    assert get(daemon, "envy.localhost", "/env").json() == {"greeting": "from roost.toml", "api_key": ""}
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=daemon.edge_url, headers={"Host": "envy.localhost"}, timeout=30) as client:
            while not stop.is_set():
                statuses.append(client.get("/").status_code)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        changed = daemon.cli("env", "envy", "set", f"API_KEY={SECRET}", "GREETING=from roost env")
        assert changed.returncode == 0, changed.stderr
        wait_until("the new environment", lambda: get(daemon, "envy.localhost", "/env").json()["api_key"] == SECRET)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert statuses and set(statuses) == {200}, f"{len(statuses)} requests: {set(statuses)}"
    assert get(daemon, "envy.localhost", "/env").json()["greeting"] == "from roost env"
    listed = daemon.cli("env", "envy", "list", "--json").stdout
    assert SECRET not in listed and "API_KEY" in listed
    assert SECRET in daemon.cli("env", "envy", "list", "--reveal").stdout
    everything = [
        daemon.cli("events", "--json", "-n", "1000").stdout,
        daemon.cli("info", "envy", "--json", "--events", "1000").stdout,
        daemon.cli("logs", "envy").stdout,
        daemon.output(),
        (daemon.home / "roost.db").read_bytes().decode("latin-1"),
    ]
    for text in everything:
        assert SECRET not in text
    assert daemon.cli("env", "envy", "unset", "API_KEY", "--yes").returncode == 0
    wait_until("the secret gone", lambda: get(daemon, "envy.localhost", "/env").json()["api_key"] == "")


def test_cron_wakes_a_sleeping_function_and_shows_in_roost_cron(daemon: Daemon, tmp_path: Path) -> None:
    pushed(daemon, make_app(tmp_path, "clock"))

    def ran() -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = json.loads(daemon.cli("cron", "clock", "--json").stdout)
        return [job for job in jobs if job["name"] == "tick" and job["last_status"] == 200]

    wait_until("the tick job to run", ran, timeout=30)
    assert "cron hit POST /tasks/tick by tick" in daemon.cli("logs", "clock").stdout
    table = daemon.cli("cron", "clock").stdout
    assert "tick" in table and "HTTP 200" in table and "(private)" in table
    runs = [e for e in events(daemon, "clock") if e["kind"] == "cron.run"]
    assert runs and runs[-1]["data"]["status"] == 200
    assert runs[0]["data"]["start"] in ("warm", "cold"), runs[0]  # the first tick woke the sleeping function
    assert not [e for e in events(daemon, "clock") if e["kind"] == "cron.skipped"]


def test_cron_paths_are_private_and_the_header_cannot_be_forged(daemon: Daemon, tmp_path: Path) -> None:
    pushed(daemon, make_app(tmp_path, "guarded"))
    assert httpx.post(f"{daemon.edge_url}/tasks/tick", headers={"Host": "guarded.localhost"}).status_code == 404
    assert get(daemon, "localhost", "/guarded/tasks/tick").status_code == 404
    assert get(daemon, "guarded.localhost", "/tasks/report").status_code == 200  # public = true
    echoed = get(daemon, "guarded.localhost", "/headers", headers={"X-Roost-Cron": "tick"})
    assert "x-roost-cron" not in echoed.json()


def test_invalid_cron_expression_fails_the_push_naming_the_job(daemon: Daemon, tmp_path: Path) -> None:
    app = make_app(tmp_path, "badcron")
    toml = app / "roost.toml"
    toml.write_text(toml.read_text().replace('schedule = "0 3 * * *"', 'schedule = "every day"'))
    result = daemon.cli("push", str(app))
    assert result.returncode == 1
    assert "report" in result.stderr and "schedule" in result.stderr


def test_metrics_count_each_start_temperature(daemon: Daemon, tmp_path: Path) -> None:
    pushed(daemon, make_app(tmp_path, "temps", crons=False))  # a cron tick first would make the first start hot
    first = get(daemon, "temps.localhost").headers["x-roost-start"]
    assert first in ("cold", "warm")  # it waited for an instance: a fork, or an import first
    assert get(daemon, "temps.localhost").headers["x-roost-start"] == "hot"
    with daemon.api() as api:
        text = api.get("/metrics").text
    starts = {
        line.split('start="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("roost_requests_by_start_total") and 'app="temps"' in line
    }
    assert starts.get(first, 0) >= 1 and starts.get("hot", 0) >= 1, starts
    families = {line.split()[2].removesuffix("_total") for line in text.splitlines() if line.startswith("# TYPE ")}
    for family in (
        "roost_requests",
        "roost_request_duration_seconds",
        "roost_requests_in_flight",
        "roost_requests_queued",
        "roost_instances",
        "roost_cold_starts",
        "roost_instance_restarts",
        "roost_oom_kills",
        "roost_build_duration_seconds",
        "roost_daemon_process_resident_memory_bytes",
    ):
        assert family in families, family
    values = samples(text, app="temps")
    assert values[("roost_requests_total", "2xx")] >= 2
    assert values[("roost_request_duration_seconds_count", "")] >= 2
    # the first request waited for an instance to start: counted, with its latency, by kind of start
    kinds = [k for k in ("fork", "fresh") if ("roost_cold_starts_total", k) in values]
    assert sum(values[("roost_cold_starts_total", k)] for k in kinds) >= 1, values
    for kind in kinds:
        assert values[("roost_cold_start_seconds_count", kind)] == values[("roost_cold_starts_total", kind)]
        assert 0 < values[("roost_cold_start_seconds_sum", kind)] < 60
    assert values[("roost_instances", "ready")] >= 1
    assert values[("roost_build_duration_seconds_count", "ready")] == 1
    assert values[("roost_build_duration_seconds_sum", "ready")] > 0
    assert values[("roost_daemon_process_resident_memory_bytes", "")] > 0


def samples(text: str, app: str) -> dict[tuple[str, str], float]:
    """(sample name, its code/start/kind/state/outcome label) -> value, for one app (and the daemon's own)."""
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("app", app) != app or "le" in s.labels:
                continue
            which = next((s.labels[k] for k in ("code", "start", "kind", "state", "outcome") if k in s.labels), "")
            found[(s.name, which)] = found.get((s.name, which), 0.0) + s.value
    return found


def venvs_on_disk(daemon: Daemon) -> set[str]:
    root = daemon.home / "venvs"
    return {p.name for p in root.iterdir() if not p.name.startswith(".")} if root.exists() else set()


def blob_path(daemon: Daemon, digest: str) -> Path:
    hex_digest = digest.removeprefix("sha256:")
    return daemon.home / "blobs" / "sha256" / hex_digest[:2] / hex_digest


def test_retention_keeps_n_plus_traffic_and_gc_frees_the_rest(daemon: Daemon, tmp_path: Path) -> None:
    app = make_app(tmp_path, "kept", keep=2)
    ids: list[str] = []
    digests: list[str] = []
    venvs: list[str] = []
    for version in range(5):  # N + 3 pushes, each with dependencies (so a venv) of its own
        (app / "handler.py").write_text(APP + f"\nVERSION = {version}\n")
        (app / "requirements.txt").write_text(f"# version {version}\n")
        before = venvs_on_disk(daemon)
        pushed(daemon, app, *(["--no-promote"] if version >= 3 else []))
        newest = json.loads(daemon.cli("deployments", "kept", "--json").stdout)[0]
        ids.append(newest["id"])
        digests.append(newest["digest"])
        (venv,) = venvs_on_disk(daemon) - before
        venvs.append(venv)
        if version == 2:  # an older deployment keeps 10% of the traffic: it stays past N
            split = daemon.cli("traffic", "kept", f"{ids[1]}=10", f"{ids[2]}=90")
            assert split.returncode == 0, split.stderr
    # the newest two, plus the two that carry traffic; the push itself removed the first one's venv and blob
    on_disk = {p.name for p in (daemon.home / "deployments" / "kept").iterdir()}
    assert on_disk == set(ids[1:])
    listed = {d["id"]: d["status"] for d in json.loads(daemon.cli("deployments", "kept", "--json").stdout)}
    assert listed[ids[0]] == "pruned"
    assert daemon.cli("rollback", "kept", ids[0]).returncode == 1  # pruned: its files are gone
    assert venvs[0] not in venvs_on_disk(daemon) and not blob_path(daemon, digests[0]).exists()
    assert set(venvs[1:]) <= venvs_on_disk(daemon) and all(blob_path(daemon, d).exists() for d in digests[1:])
    collected = [e for e in events(daemon, "kept") if e["kind"] == "retention.collected"]
    assert any(
        venvs[0] in e["data"]["venvs"] and digests[0] in e["data"]["blobs"] and e["data"]["freed_bytes"] > 0
        for e in collected
    ), collected

    # once production moves to the newest, gc prunes the two that carried traffic and frees their venvs and blobs
    assert daemon.cli("promote", "kept", ids[4]).returncode == 0
    report = json.loads(daemon.cli("gc", "--yes", "--json").stdout)
    assert sorted(report["pruned"]) == sorted(f"kept/{i}" for i in ids[1:3])
    assert report["freed_bytes"] > 0
    assert {v["name"] for v in report["venvs"]} == set(venvs[1:3])
    assert {b["name"] for b in report["blobs"]} == set(digests[1:3])
    assert {p.name for p in (daemon.home / "deployments" / "kept").iterdir()} == set(ids[3:])
    assert not set(venvs[:3]) & venvs_on_disk(daemon) and set(venvs[3:]) <= venvs_on_disk(daemon)
    assert [blob_path(daemon, d).exists() for d in digests] == [False, False, False, True, True]
    assert "freed" in daemon.cli("gc", "--yes").stdout
    assert get(daemon, "kept.localhost").status_code == 200
