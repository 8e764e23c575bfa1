"""Process types through a real `roost serve`: a Celery worker consuming from a real Redis
(started here, on a free loopback port, in a folder of its own) does the jobs the web process
enqueues; a SIGKILLed worker comes back after a back-off; a worker that exits at once fails the
deploy while production keeps serving; promote and rollback drain the old workers (SIGTERM,
then the grace); counts scale and survive a daemon restart; a Procfile app; a memory kill."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.apps import get, info, push, pushed, wait_until, write_app
from tests.e2e.harness import Daemon, module_daemon, running
from tests.e2e.services import running_redis

daemon = module_daemon("processes")

CELERY_TASKS = """
import os

from celery import Celery

app = Celery("tasks", broker=os.environ["REDIS_URL"], backend=os.environ["REDIS_URL"])
app.conf.broker_connection_retry_on_startup = True


@app.task
def add(x, y):
    return x + y
"""
CELERY_WEB = """
from tasks import add, app


def handler(request):
    if request.path == "/enqueue":
        return {"id": add.delay(int(request.query["x"]), int(request.query["y"])).id}
    if request.path == "/result":
        result = app.AsyncResult(request.query["id"])
        return {"ready": result.ready(), "value": result.result if result.ready() else None}
    return "celery web"
"""
CELERY_WORKER = "celery -A tasks worker --pool solo --without-heartbeat --without-gossip --without-mingle -l info"

WEB = """
import os


def handler(request):
    return "web of " + os.environ["VERSION"]
"""
# A worker that says when it starts, and on SIGTERM finishes its "current job" within the grace.
WORKER = """
import os
import signal
import sys
import time

version = os.environ["VERSION"]


def finish(signum, frame):
    print(f"{version} got SIGTERM: finishing the current job", flush=True)
    time.sleep(0.3)
    print(f"{version} finished its job", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, finish)
print(f"{version} worker up, PORT={os.environ.get('PORT', 'none')}", flush=True)
while True:
    time.sleep(0.2)
"""
HOG = """
import time

time.sleep(3)  # well past its ready_after (1 s), even on a busy host: a memory kill, not a failed start
print("hog: allocating", flush=True)
ballast = []
while True:
    ballast.append(bytearray(8 * 1024 * 1024))
    time.sleep(0.01)
"""


OFFLINE = """
import os
import socket
import time

try:
    socket.create_connection(("127.0.0.1", int(os.environ["EDGE_PORT"])), timeout=2).close()
    print("offline: the edge answered", flush=True)
except OSError as exc:
    print(f"offline: no way out ({type(exc).__name__})", flush=True)
while True:
    time.sleep(0.2)
"""


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A private redis-server for the module's Celery apps; its port."""
    with running_redis(tmp_path_factory.mktemp("redis")) as port:
        yield port


def workers(daemon: Daemon, app: str, state: str = "ready", process: str = "worker") -> list[dict[str, Any]]:
    return [i for i in info(daemon, app)["instances"] if i["process"] == process and i["state"] == state]


def events(daemon: Daemon, app: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in info(daemon, app)["events"] if e["kind"] == kind]


def process_logs(daemon: Daemon, app: str, process: str = "worker") -> str:
    result = daemon.cli("logs", app, "--process", process)
    assert result.returncode == 0, result.stderr
    return result.stdout


def simple_app(root: Path, name: str, version: str, worker: str = WORKER) -> Path:
    toml = f'name = "{name}"\nentrypoint = "web:handler"\n[env]\nVERSION = "{version}"\n'
    toml += '[processes.worker]\ncommand = "python worker.py"\nready_after = "1s"\n'
    return write_app(root, f"{name}-{version}", {"roost.toml": toml, "web.py": WEB, "worker.py": worker})


def test_a_celery_worker_does_the_jobs_the_web_process_enqueues(daemon: Daemon, redis: int, tmp_path: Path) -> None:
    toml = (
        'name = "celery-shop"\nentrypoint = "web:handler"\n'
        '[limits]\nmemory = "256M"\ncpu = 1\n'
        f'[env]\nREDIS_URL = "redis://127.0.0.1:{redis}/0"\n'
        f'[processes.worker]\ncommand = "{CELERY_WORKER}"\nready_after = "2s"\n'
    )
    files = {
        "roost.toml": toml,
        "tasks.py": CELERY_TASKS,
        "web.py": CELERY_WEB,
        "requirements.txt": "celery[redis]>=5.3\n",
    }
    out = pushed(daemon, write_app(tmp_path, "celery-shop", files))
    assert "build check: process type 'worker' must stay up 2s" in out

    def done(x: int, y: int) -> int:
        task = get(daemon, "celery-shop.localhost", f"/enqueue?x={x}&y={y}").json()["id"]

        def result() -> int | None:
            answer = get(daemon, "celery-shop.localhost", f"/result?id={task}").json()
            return int(answer["value"]) if answer["ready"] else None

        return wait_until(f"the worker to add {x} and {y}", result, timeout=60)

    assert done(2, 3) == 5
    (worker,) = workers(daemon, "celery-shop")
    shown = info(daemon, "celery-shop")["processes"]
    assert [(p["process"], p["wanted"], p["ready"]) for p in shown] == [("worker", 1, 1)]
    listed = {a["name"]: a for a in json.loads(daemon.cli("list", "--json").stdout)}
    assert [(p["process"], p["ready"]) for p in listed["celery-shop"]["processes"]] == [("worker", 1)]
    web = [i for i in info(daemon, "celery-shop")["instances"] if not i["process"] and i["state"] != "stopped"]
    assert listed["celery-shop"]["instances"] == len(web)  # `roost list` counts web instances apart
    listing = daemon.cli("list").stdout
    assert "PROCESSES" in listing and "worker 1/1" in listing, listing
    shown_text = daemon.cli("info", "celery-shop").stdout
    assert "PROCESS" in shown_text and "processes.worker" in shown_text, shown_text
    logs = process_logs(daemon, "celery-shop")
    assert "Task tasks.add" in logs and "succeeded" in logs, logs
    assert "GET /enqueue" not in logs  # only the worker's own lines

    # SIGKILL: the worker comes back after a back-off, and does the next job.
    os.kill(worker["pid"], signal.SIGKILL)
    wait_until("the worker's crash", lambda: events(daemon, "celery-shop", "instance.crashed"), timeout=30)
    crashed = events(daemon, "celery-shop", "instance.crashed")[0]
    assert crashed["data"]["process"] == "worker" and "killed by SIGKILL" in crashed["message"], crashed
    backoff = wait_until("a back-off", lambda: events(daemon, "celery-shop", "instance.backoff"), timeout=30)
    assert "restarting a worker instance" in backoff[0]["message"]
    again = wait_until("a new worker", lambda: [w for w in workers(daemon, "celery-shop") if w["id"] != worker["id"]])
    assert again[0]["restarts"] >= 1
    assert info(daemon, "celery-shop")["processes"][0]["restarts"] == 1
    assert done(20, 22) == 42

    # scale worker=2: two workers share the queue.
    scaled = daemon.cli("scale", "celery-shop", "--process", "worker=2")
    assert scaled.returncode == 0, scaled.stderr
    assert "worker" in scaled.stdout and "2" in scaled.stdout
    wait_until("two workers", lambda: len(workers(daemon, "celery-shop")) == 2, timeout=60)
    assert [done(n, n) for n in range(1, 5)] == [2, 4, 6, 8]  # (wait_until wants a truthy result)


def test_a_worker_that_exits_at_once_fails_the_deploy_and_production_keeps_serving(
    daemon: Daemon, tmp_path: Path
) -> None:
    pushed(daemon, simple_app(tmp_path, "steady", "v1"))
    (before,) = workers(daemon, "steady")
    stops = process_logs(daemon, "steady").count("v1 got SIGTERM")  # the build check's worker, stopped
    broken = "import sys\nprint('worker: no QUEUE_URL configured', flush=True)\nsys.exit(3)\n"
    code, out, err = push(daemon, simple_app(tmp_path, "steady", "v2", worker=broken))
    assert code == 1, out + err
    assert "process type 'worker' exited with status 3 within 1s of starting" in err, err
    assert "worker: no QUEUE_URL configured" in out + err  # its own last lines, in the push log
    assert get(daemon, "steady.localhost").text == "web of v1"
    assert [w["pid"] for w in workers(daemon, "steady")] == [before["pid"]]  # the old worker was not touched
    assert process_logs(daemon, "steady").count("v1 got SIGTERM") == stops


def test_promote_and_rollback_start_the_new_workers_then_drain_the_old(daemon: Daemon, tmp_path: Path) -> None:
    pushed(daemon, simple_app(tmp_path, "drainer", "v1"))
    (v1,) = workers(daemon, "drainer")
    assert "v1 worker up, PORT=none" in process_logs(daemon, "drainer")  # a process type gets no $PORT
    pushed(daemon, simple_app(tmp_path, "drainer", "v2"))
    (v2,) = workers(daemon, "drainer")
    assert v2["deployment"] == info(daemon, "drainer")["traffic"][0]["deployment"] != v1["deployment"]
    assert_handed_over(daemon, new=v2, old=v1, version="v1")

    rolled = daemon.cli("rollback", "drainer")
    assert rolled.returncode == 0, rolled.stderr
    (back,) = wait_until("one worker of v1 again", lambda: workers(daemon, "drainer"))
    assert back["deployment"] == v1["deployment"] and back["id"] != v1["id"]
    assert_handed_over(daemon, new=back, old=v2, version="v2")
    assert get(daemon, "drainer.localhost").text == "web of v1"


def assert_handed_over(daemon: Daemon, new: dict[str, Any], old: dict[str, Any], version: str) -> None:
    """`old` got SIGTERM after `new` was up, and finished its job within the grace."""

    finished = f"worker/{old['id']}: {version} finished its job"

    def after_the_job() -> list[str] | None:
        found = process_logs(daemon, "drainer").splitlines()
        return found if any(finished in line for line in found) else None

    found = wait_until(f"{old['id']} to finish its job", after_the_job)
    up = next(n for n, line in enumerate(found) if f"worker/{new['id']}: " in line and "worker up" in line)
    term = next(n for n, line in enumerate(found) if f"worker/{old['id']}: {version} got SIGTERM" in line)
    assert up < term, "the new worker is up before the old one drains"


def test_a_procfile_names_the_web_command_and_the_workers(daemon: Daemon, tmp_path: Path) -> None:
    procfile = "web: python -m http.server $PORT\nrelease: echo the release ran\nclock: python clock.py\n"
    clock = "import time\nprint('clock: tick', flush=True)\nwhile True:\n    time.sleep(0.2)\n"
    app = write_app(
        tmp_path, "procfile-app", {"Procfile": procfile, "clock.py": clock, "hello.txt": "from a Procfile\n"}
    )
    out = pushed(daemon, app, "--name", "procfile-app")
    assert "the release ran" in out  # the Procfile's release line is the release command, run once
    assert get(daemon, "procfile-app.localhost", "/hello.txt").text == "from a Procfile\n"
    wait_until("the clock process", lambda: workers(daemon, "procfile-app", process="clock"), timeout=30)
    assert "clock: tick" in process_logs(daemon, "procfile-app", "clock")
    assert [p["process"] for p in info(daemon, "procfile-app")["processes"]] == ["clock"]


def test_per_type_limits_a_memory_kill_and_no_network(daemon: Daemon, tmp_path: Path) -> None:
    toml = (
        f'name = "hoggy"\nentrypoint = "web:handler"\n[env]\nVERSION = "v1"\nEDGE_PORT = "{daemon.edge_port}"\n'
        '[processes.hog]\ncommand = "python hog.py"\nready_after = "1s"\n[processes.hog.limits]\nmemory = "48M"\n'
        '[processes.offline]\ncommand = "python offline.py"\nready_after = "1s"\n'
        '[processes.offline.limits]\nnetwork = "none"\n'
    )
    files = {"roost.toml": toml, "web.py": WEB, "hog.py": HOG, "offline.py": OFFLINE}
    pushed(daemon, write_app(tmp_path, "hoggy", files))

    def memory_kill() -> dict[str, Any] | None:
        crashes = [e for e in events(daemon, "hoggy", "instance.crashed") if e["data"].get("process") == "hog"]
        return next((e for e in crashes if e["data"]["out_of_memory"]), None)

    crash = wait_until("the hog's memory kill", memory_kill, timeout=60)
    assert "hog instance" in crash["message"] and "exceeded its memory limit of 48 MB" in crash["message"], crash
    assert get(daemon, "hoggy.localhost").text == "web of v1"  # the web process is not touched
    logs = process_logs(daemon, "hoggy", "offline")
    assert "offline: no way out (ConnectionRefusedError)" in logs, logs  # its own loopback only
    assert "the edge answered" not in logs


def test_process_counts_survive_a_daemon_restart_and_follow_stop_start_and_env(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    app = simple_app(tmp_path, "durable", "v1")
    with running(home) as first:
        pushed(first, app)
        assert first.cli("scale", "durable", "--process", "worker=2").returncode == 0
        wait_until("two workers", lambda: len(workers(first, "durable")) == 2, timeout=30)
    started = time.time()
    with running(home) as second:
        wait_until("two workers again", lambda: len(workers(second, "durable")) == 2, timeout=60)
        assert all(w["started_at"] >= started for w in workers(second, "durable"))
        unknown = second.cli("scale", "durable", "--process", "mailer=1")
        assert unknown.returncode == 1
        assert "app 'durable' has no process type 'mailer'" in unknown.stderr
        assert "its process types: worker" in unknown.stderr

        assert second.cli("stop", "durable").returncode == 0
        assert workers(second, "durable") == []
        assert second.cli("start", "durable").returncode == 0
        wait_until("two workers after a start", lambda: len(workers(second, "durable")) == 2, timeout=60)

        old = {w["id"] for w in workers(second, "durable")}
        assert second.cli("env", "durable", "set", "VERSION=v9").returncode == 0

        def rolled() -> bool:
            now = workers(second, "durable")
            return len(now) == 2 and not old & {w["id"] for w in now}

        wait_until("the workers to roll onto the new environment", rolled, timeout=60)
        logs = process_logs(second, "durable")
        assert logs.count("v9 worker up") == 2 and logs.count("v1 got SIGTERM") >= 2, logs
