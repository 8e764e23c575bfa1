"""Release commands and health checks through a real `roost serve`: a Django app whose release
migrates a real PostgreSQL (started here) before its first request, a bad migration that fails
the push while production keeps answering, a release past its timeout, a build check on
`[check] path`, and a liveness check that restarts an instance that turned unhealthy. One daemon
for the module: the tests use apps of their own."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.apps import get, info, push, pushed, ready_instances, wait_until, write_app
from tests.e2e.djangoapp import BROKEN_MIGRATION, django_app
from tests.e2e.harness import Daemon, module_daemon
from tests.e2e.services import running_postgres

daemon = module_daemon("release", "--build-check-timeout", "20s")  # a failing check fails within 20s


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A real PostgreSQL for the module's Django app; its URL."""
    with running_postgres("greetings") as url:
        yield url


def events(daemon: Daemon, app: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(daemon.cli("events", app, "--json", "-n", "1000").stdout)
    return found


def deployments(daemon: Daemon, app: str) -> list[dict[str, Any]]:
    result = daemon.cli("deployments", app, "--json")
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def test_a_release_migrates_before_the_first_request_and_a_bad_one_never_reaches_production(
    daemon: Daemon, tmp_path: Path, postgres: str
) -> None:
    assert daemon.cli("create", "migrating").returncode == 0
    assert daemon.cli("env", "migrating", "set", f"DATABASE_URL={postgres}").returncode == 0  # a secret
    app = django_app(tmp_path)
    out = pushed(daemon, app)
    assert "==> release: python manage.py migrate --noinput" in out
    assert "Applying greetings.0001_initial... OK" in out  # the command's own output, streamed
    assert out.index("==> release") < out.index("production traffic goes to")
    response = get(daemon, "migrating.localhost")
    assert (response.status_code, response.text) == (200, "hello from a migration")
    first = deployments(daemon, "migrating")[0]["id"]

    (app / "greetings" / "migrations" / "0002_broken.py").write_text(BROKEN_MIGRATION)
    code, out, err = push(daemon, app)
    assert code != 0, out + err
    assert "Applying greetings.0002_broken..." in out + err
    assert 'relation "no_such_table" does not exist' in out + err
    failed = deployments(daemon, "migrating")[0]
    assert failed["status"] == "failed"
    assert failed["error"].startswith(
        "release command failed: `python manage.py migrate --noinput` exited with status 1"
    )
    assert 'relation "no_such_table" does not exist' in failed["error"]
    response = get(daemon, "migrating.localhost")
    assert (response.status_code, response.text) == (200, "hello from a migration")
    listed = {row["name"]: row for row in json.loads(daemon.cli("list", "--json").stdout)}
    assert listed["migrating"]["production"] == first

    (app / "greetings" / "migrations" / "0002_broken.py").unlink()
    out = pushed(daemon, app)  # the same code again: a new deployment, so its release runs again
    assert "No migrations to apply." in out
    assert release_runs(daemon, "migrating") == 3
    assert daemon.cli("rollback", "migrating").returncode == 0
    assert daemon.cli("promote", "migrating", first).returncode == 0
    assert release_runs(daemon, "migrating") == 3  # a rollback or a promote never runs it
    assert get(daemon, "migrating.localhost").text == "hello from a migration"


def release_runs(daemon: Daemon, app: str) -> int:
    """How often the app's release command started (Django prints this line first), from its log."""
    result = daemon.cli("logs", app, "--app-only", "--json", "-n", "5000")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return sum(1 for line in lines if line["source"] == "release" and "Operations to perform" in line["text"])


def test_a_release_past_its_timeout_fails_the_push_and_names_the_timeout(daemon: Daemon, tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "slow-release",
        {
            "roost.toml": 'name = "slow-release"\nentrypoint = "main:handler"\n'
            'release = "echo migrating slowly && sleep 60"\nrelease_timeout = "2s"\n',
            "main.py": "def handler(request):\n    return 'never served'\n",
        },
    )
    code, out, err = push(daemon, app)
    assert code != 0, out + err
    assert "migrating slowly" in out  # streamed before the timeout struck
    failed = deployments(daemon, "slow-release")[0]
    assert failed["status"] == "failed"
    assert "did not finish within its release_timeout of 2s" in failed["error"]
    assert "migrating slowly" in failed["error"]
    assert get(daemon, "slow-release.localhost").status_code == 503


HEALTH_APP = """
import os

healthy = True


def handler(request):
    global healthy
    if request.path == "/healthz":
        return ("ok", 200) if healthy else ("sick", 503)
    if request.path == "/sick":
        healthy = False
        return "now sick"
    if request.path == "/who":
        return os.environ["ROOST_INSTANCE"]
    return ("the front page is broken", 500)
"""


def test_the_build_check_asks_the_check_path(daemon: Daemon, tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "checked",
        {
            "roost.toml": 'name = "checked"\nentrypoint = "main:handler"\n[check]\npath = "/healthz"\nstatus = 200\n',
            "main.py": HEALTH_APP,
        },
    )
    out = pushed(daemon, app)  # `/` answers 500: only the check path decides
    assert "pass its health check (GET /healthz: HTTP 200)" in out
    assert "GET /healthz answered HTTP 200" in out
    assert get(daemon, "checked.localhost").status_code == 500
    details = info(daemon, "checked")
    assert details["settings"]["check"] == {
        "path": "/healthz",
        "status": 200,
        "interval": 10,
        "timeout": 5,
        "failures": 3,
    }
    assert (details["sources"]["check.path"], details["sources"]["check.interval"]) == ("roost.toml", "default")
    shown = daemon.cli("info", "checked").stdout
    assert "check.path" in shown and "/healthz" in shown


def test_a_build_check_that_never_passes_fails_the_push_naming_the_check(daemon: Daemon, tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "never-healthy",
        {
            "roost.toml": 'name = "never-healthy"\nentrypoint = "main:handler"\n[check]\npath = "/nope"\n',
            "main.py": HEALTH_APP,  # any path it does not know answers 500
        },
    )
    code, out, err = push(daemon, app)
    assert code != 0, out + err
    failed = deployments(daemon, "never-healthy")[0]
    assert failed["status"] == "failed"
    assert failed["error"].startswith("build check failed: listened on $PORT")
    assert failed["error"].endswith(
        "but failed its health check within 20s: GET /nope answered HTTP 500 (expected an HTTP status below 400)"
    )


SLOW_TO_HEALTH = """
import os
import time

first_check: dict[int, float] = {}


def handler(request):
    if request.path == "/healthz":  # healthy 1.5s after this process saw its first check
        seen = first_check.setdefault(os.getpid(), time.monotonic())
        return ("ok", 200) if time.monotonic() - seen >= 1.5 else ("warming up", 503)
    return os.environ["ROOST_INSTANCE"]
"""


def test_a_started_instance_is_ready_only_once_its_check_passes(daemon: Daemon, tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "warming",
        {
            "roost.toml": 'name = "warming"\nentrypoint = "main:handler"\nmode = "service"\n'
            "release = \"echo uid=$(id -u); grep '^Seccomp:' /proc/self/status; touch main.py || echo read-only\"\n"
            '[check]\npath = "/healthz"\n',
            "main.py": SLOW_TO_HEALTH,
        },
    )
    out = pushed(daemon, app)
    assert "GET /healthz answered HTTP 200" in out  # the build check asked until it passed
    (instance,) = wait_until("the service's instance", lambda: ready_instances(daemon, "warming"))
    (ready,) = [e for e in events(daemon, "warming") if e["kind"] == "instance.ready"]
    assert ready["data"]["instance"] == instance["id"]
    assert ready["data"]["seconds"] >= 1.5  # it answered 503 until then: not ready, not routed
    assert get(daemon, "warming.localhost").text == instance["id"]
    # the release ran confined as the instances are: the app's uid, a seccomp filter, read-only code
    uid = info(daemon, "warming")["instances"][0]["isolation"]["identity"]["uid"][1]
    assert uid != 0
    assert f"uid={uid}\n" in out
    assert re.search(r"Seccomp:\s+2\n", out), out  # 2: a filter
    assert "read-only" in out


def test_an_instance_that_turns_unhealthy_is_restarted_with_an_event_naming_the_check(
    daemon: Daemon, tmp_path: Path
) -> None:
    app = write_app(
        tmp_path,
        "liveness",
        {
            "roost.toml": 'name = "liveness"\nentrypoint = "main:handler"\nmode = "service"\n'
            '[scale]\nmin = 1\nmax = 1\n[check]\npath = "/healthz"\ninterval = "1s"\ntimeout = "1s"\nfailures = 2\n',
            "main.py": HEALTH_APP,
        },
    )
    pushed(daemon, app)
    sick = get(daemon, "liveness.localhost", "/who").text
    assert get(daemon, "liveness.localhost", "/sick").text == "now sick"

    def restarted() -> dict[str, Any] | None:
        found = [e for e in events(daemon, "liveness") if e["kind"] == "instance.unhealthy"]
        return found[0] if found else None

    event = wait_until("the unhealthy instance's event", restarted, timeout=60)
    assert event["message"] == (
        f"instance {sick} failed its health check 2 time(s) in a row: "
        "GET /healthz answered HTTP 503 (expected an HTTP status below 400); restarting it"
    )
    assert event["data"]["check"] == "/healthz"
    assert event["data"]["status"] == 503
    fresh = wait_until(
        "a healthy replacement", lambda: [i for i in ready_instances(daemon, "liveness") if i["id"] != sick], timeout=60
    )
    assert get(daemon, "liveness.localhost", "/who").text == fresh[0]["id"]
    assert get(daemon, "liveness.localhost", "/healthz").text == "ok"


WEARY_APP = """
checks = 0


def handler(request):
    global checks
    if request.path == "/healthz":
        checks += 1
        return ("ok", 200) if checks <= 2 else ("worn out", 503)
    return "hello"
"""


def test_an_instance_that_keeps_turning_unhealthy_is_restarted_with_a_growing_back_off(
    daemon: Daemon, tmp_path: Path
) -> None:
    """Every instance passes its first two checks, then fails: restarts back off like crashes do
    (1 s, 2 s, 4 s) and the third says crash-looping, instead of a restart every few seconds forever."""
    app = write_app(
        tmp_path,
        "weary",
        {
            "roost.toml": 'name = "weary"\nentrypoint = "main:handler"\nmode = "service"\n'
            '[scale]\nmin = 1\nmax = 1\n[check]\npath = "/healthz"\ninterval = "1s"\ntimeout = "1s"\nfailures = 2\n',
            "main.py": WEARY_APP,
        },
    )
    pushed(daemon, app)

    def backoffs() -> list[dict[str, Any]] | None:
        found = [e for e in events(daemon, "weary") if e["kind"] == "instance.backoff"]
        return found if len(found) >= 3 else None

    first, second, third = wait_until("three backed-off restarts", backoffs, timeout=90)[:3]
    assert [e["data"]["streak"] for e in (first, second, third)] == [1, 2, 3]
    assert [e["data"]["delay"] for e in (first, second, third)] == pytest.approx([1.0, 2.0, 4.0], abs=0.2)
    assert "unhealthy: failed its health check 2 time(s) in a row" in first["message"], first
    assert "crash-looping" in third["message"], third
    unhealthy = [e for e in events(daemon, "weary") if e["kind"] == "instance.unhealthy"]
    assert len(unhealthy) >= 3, unhealthy
    assert daemon.cli("remove", "weary", "--yes").returncode == 0


def test_checks_neither_keep_a_function_awake_nor_count_as_its_requests(daemon: Daemon, tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "sleepy",
        {
            "roost.toml": 'name = "sleepy"\nentrypoint = "main:handler"\n[scale]\nidle_timeout = "2s"\n'
            '[check]\npath = "/healthz"\ninterval = "1s"\ntimeout = "1s"\n',
            "main.py": HEALTH_APP,
        },
    )
    pushed(daemon, app)
    assert get(daemon, "sleepy.localhost", "/healthz").status_code == 200  # wakes it: one request
    wait_until("the function to sleep although checked every second", lambda: not ready_instances(daemon, "sleepy"))
    log = daemon.cli("logs", "sleepy", "--requests-only", "--json", "-n", "1000")
    assert log.returncode == 0, log.stderr
    requests = [json.loads(line) for line in log.stdout.splitlines() if line.strip()]
    assert len(requests) == 1, requests  # the checks went around the edge
    assert not [e for e in events(daemon, "sleepy") if e["kind"] == "instance.unhealthy"]
