"""The deploy pipeline end to end: push real example apps to a real daemon and talk to them over the edge."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.apps import ANSWERS, EXAMPLES, get, push, write_app
from tests.e2e.harness import Daemon, base_env, running

ALL = sorted(ANSWERS)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon with every example pushed once."""
    home = tmp_path_factory.mktemp("pipeline") / "home"
    home.mkdir()
    with running(home) as daemon:
        for name in ALL:
            code, out, err = push(daemon, EXAMPLES / name)
            assert code == 0, f"push {name} failed:\n{out}\n{err}\n{daemon.output()}"
        yield daemon


@pytest.mark.parametrize("name", ALL)
def test_each_example_answers_on_its_host_and_path(deployed: Daemon, name: str) -> None:
    by_host = get(deployed, f"{name}.localhost")
    assert by_host.status_code == 200, by_host.text
    assert ANSWERS[name] in by_host.text
    by_path = get(deployed, "localhost", f"/{name}/")
    assert by_path.status_code == 200
    assert ANSWERS[name] in by_path.text


def test_deployments_list_marks_production_and_preview_answers(deployed: Daemon) -> None:
    listed = json.loads(deployed.cli("deployments", "flask-hello", "--json").stdout)
    assert len(listed) >= 1
    production = [d for d in listed if d["weight"] == 100]
    assert len(production) == 1
    assert production[0]["status"] == "ready"
    deployment = production[0]["id"]
    preview = get(deployed, f"{deployment}--flask-hello.localhost")
    assert preview.status_code == 200
    assert "Hello from Flask!" in preview.text
    table = deployed.cli("deployments", "flask-hello").stdout
    assert deployment in table
    assert "100%" in table


def test_unknown_app_and_deployment_are_plain_404(deployed: Daemon) -> None:
    for host in ("nope.localhost", "zzzzzzzz--flask-hello.localhost", "example.org"):
        response = get(deployed, host)
        assert response.status_code == 404
        assert "flask" not in response.text.lower()


def test_redeploy_rollback_and_promote(deployed: Daemon, tmp_path: Path) -> None:
    app = tmp_path / "flask-v2"
    shutil.copytree(EXAMPLES / "flask-hello", app)
    (app / "roost.toml").write_text((app / "roost.toml").read_text().replace('"flask-hello"', '"flask-ab"'))
    code, out, err = push(deployed, app, "-m", "v1")
    assert code == 0, err
    first = get(deployed, "flask-ab.localhost").text
    source = (app / "app.py").read_text()
    (app / "app.py").write_text(source.replace("Hello from Flask!", "Hello from Flask v2!"))
    code, out, err = push(deployed, app, "-m", "v2")
    assert code == 0, err
    assert "ready" in out
    assert "Hello from Flask v2!" in get(deployed, "flask-ab.localhost").text
    rolled = deployed.cli("rollback", "flask-ab")
    assert rolled.returncode == 0, rolled.stderr
    assert get(deployed, "flask-ab.localhost").text == first
    listed = json.loads(deployed.cli("deployments", "flask-ab", "--json").stdout)
    newest = listed[0]["id"]
    promoted = deployed.cli("promote", "flask-ab", newest)
    assert promoted.returncode == 0
    assert "Hello from Flask v2!" in get(deployed, "flask-ab.localhost").text


def test_unchanged_push_does_not_upload_again(deployed: Daemon) -> None:
    code, out, err = push(deployed, EXAMPLES / "handler-hello")
    assert code == 0, err
    assert "not uploaded again" in out


STEPS = ("unpack the archive", "install dependencies (uv)", "compile bytecode", "build check")


def test_push_shows_upload_steps_with_times_and_where_it_answers(deployed: Daemon, tmp_path: Path) -> None:
    app = tmp_path / "shown"
    shutil.copytree(EXAMPLES / "handler-hello", app)
    (app / "roost.toml").write_text((app / "roost.toml").read_text().replace('"handler-hello"', '"shown"'))
    (app / "requirements.txt").write_text("# a venv of its own, so its dependencies are installed\n")
    code, out, err = push(deployed, app)
    assert code == 0, err
    text = out + err
    assert re.search(r"uploaded \S+ \S+ in \d+\.\d\ds \(\S+ \S+/s\)", text), text
    for step in STEPS:
        assert re.search(rf"✓ {re.escape(step)} \d+\.\d\ds", text), (step, text)
    newest = json.loads(deployed.cli("deployments", "shown", "--json").stdout)[0]
    assert newest["preview_url"].startswith(f"http://{newest['id']}--shown.localhost:")
    assert re.search(rf"deployment {newest['id']} ready in \d+\.\ds", text), text
    assert re.search(rf"preview +{re.escape(newest['preview_url'])}", text), text
    assert re.search(rf"production +{re.escape(newest['url'])}", text), text
    assert newest["url"] == f"{deployed.edge_url.replace('127.0.0.1', 'shown.localhost')}/"
    again = push(deployed, app)[1]  # unchanged: the venv is reused, and said so
    assert re.search(r"✓ reuse the virtual environment \d+\.\d\ds", again), again


def test_push_json_is_one_object(deployed: Daemon) -> None:
    result = deployed.cli("push", str(EXAMPLES / "handler-hello"), "--json", "--no-promote", timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "ready"
    assert data["preview_url"].startswith(f"http://{data['id']}--handler-hello.localhost:")
    assert data["elapsed"] > 0
    names = [step["name"] for step in data["steps"]]
    assert names == ["unpack the archive", "reuse the virtual environment", "compile bytecode", "build check"]
    assert all(0 <= step["seconds"] < data["elapsed"] for step in data["steps"])
    assert data["upload"]["skipped"] is True  # pushed already by the fixture
    production = json.loads(deployed.cli("deployments", "handler-hello", "--json").stdout)
    assert next(d for d in production if d["id"] == data["id"])["weight"] == 0


def test_broken_app_fails_with_its_own_error_and_production_stays(deployed: Daemon, tmp_path: Path) -> None:
    before = get(deployed, "handler-hello.localhost").text
    broken = write_app(
        tmp_path,
        "broken",
        {"roost.toml": 'name = "handler-hello"\nentrypoint = "handler:handler"\n', "handler.py": "def handler(r)\n"},
    )
    code, out, err = push(deployed, broken)
    assert code == 1
    assert "SyntaxError" in out + err
    # the app's own error names the file and the line to fix
    assert re.search(r'File "[^"]*handler\.py", line 1', out + err), out + err
    assert "build check failed" in out + err
    assert get(deployed, "handler-hello.localhost").text == before
    listed = json.loads(deployed.cli("deployments", "handler-hello", "--json").stdout)
    failed = listed[0]
    assert failed["status"] == "failed"
    refused = deployed.cli("rollback", "handler-hello", failed["id"])
    assert refused.returncode == 1
    assert "failed, not ready" in refused.stderr


def test_unresolvable_dependency_shows_uvs_message(deployed: Daemon, tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "baddeps",
        {
            "roost.toml": 'name = "baddeps"\nentrypoint = "handler:handler"\n',
            "handler.py": "def handler(r):\n    return 'x'\n",
            "requirements.txt": "roost-no-such-package-anywhere==1.0\n",
        },
    )
    code, out, err = push(deployed, app)
    assert code == 1
    assert "roost-no-such-package-anywhere" in out + err


def test_app_that_never_listens_fails_the_build_check(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    app = write_app(tmp_path, "silent", {"roost.toml": 'name = "silent"\ncommand = "sleep 60"\n'})
    with running(home, "--build-check-timeout", "2s") as daemon:
        code, out, err = push(daemon, app)
        assert code == 1
        assert "never listened on $PORT" in out + err


def test_daemon_killed_during_build_marks_it_failed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    slow = write_app(
        tmp_path,
        "slowbuild",
        {"roost.toml": 'name = "slowbuild"\ncommand = "sleep 600"\n'},
    )
    with running(home, "--build-check-timeout", "120s") as daemon:
        started = spawn_push(daemon, slow)
        try:
            wait_for_status(daemon, "slowbuild", "building")
            daemon.signal(signal.SIGKILL)
            daemon.wait_exit()
        finally:
            started.kill()
            started.wait(timeout=10)
            for stream in (started.stdout, started.stderr):
                if stream:
                    stream.close()
    with running(home) as again:
        listed = json.loads(again.cli("deployments", "slowbuild", "--json").stdout)
        assert listed[0]["status"] == "failed"
        assert "daemon stopped during the build" in listed[0]["error"]


def spawn_push(daemon: Daemon, path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "roost", "push", str(path)],
        env=base_env(daemon.home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_status(daemon: Daemon, app: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = daemon.cli("deployments", app, "--json")
        if result.returncode == 0:
            listed = json.loads(result.stdout)
            if listed and listed[0]["status"] == status:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{app} never reached {status}")
