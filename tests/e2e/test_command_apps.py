"""Command apps as a new user writes them (`$PORT` in a shell line) and the messages of the
first hour: a failed build check says why, a failed first push leaves a URL that says so,
and rollback of an unknown app says there is no such app. Through a real `roost serve`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.e2e.apps import get, push, pushed, write_app
from tests.e2e.harness import Daemon, module_daemon

daemon = module_daemon("commands")

HELLO_WSGI = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from gunicorn"]
"""
NEEDS_DATABASE = """
import os

DATABASE = os.environ["DATABASE_URL"]


def handler(request):
    return "connected to " + DATABASE
"""


def error_line(output: str) -> str:
    """The CLI's `error: ...` line of a failed command."""
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert lines, output
    return lines[-1]


def test_the_readme_gunicorn_example_serves(daemon: Daemon, tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "gunicorn-app",
        {
            "roost.toml": 'name = "gunicorn-app"\ncommand = "gunicorn main:app --bind 127.0.0.1:$PORT"\n',
            "main.py": HELLO_WSGI,
            "requirements.txt": "gunicorn>=21\n",
        },
    )
    pushed(daemon, app)
    for host, path in (("gunicorn-app.localhost", "/"), ("localhost", "/gunicorn-app/")):
        response = get(daemon, host, path)
        assert (response.status_code, response.text) == (200, "hello from gunicorn")


def test_python_http_server_on_port_serves(daemon: Daemon, tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "files",
        {"roost.toml": 'name = "files"\ncommand = "python -m http.server ${PORT}"\n', "hello.txt": "static hello\n"},
    )
    pushed(daemon, app)
    response = get(daemon, "files.localhost", "/hello.txt")
    assert (response.status_code, response.text) == (200, "static hello\n")


def test_a_missing_program_fails_its_first_push_and_its_url_says_so(daemon: Daemon, tmp_path: Path) -> None:
    app = write_app(tmp_path, "typo", {"roost.toml": 'name = "typo"\ncommand = "gunicron main:app -b :$PORT"\n'})
    code, out, err = push(daemon, app)
    assert code == 1
    pattern = (
        r"error: deployment \w+ failed: build check failed: /bin/sh -c 'exec gunicron main:app -b :\$PORT' "
        r"\(PORT=\d+\) exited with status 127 before answering: (/bin/)?sh: 1: exec: gunicron: not found"
    )
    assert re.fullmatch(pattern, error_line(err)), err
    assert "production still serves" not in out + err
    assert "'typo' has no working deployment yet (`roost logs typo` has details)" in err
    listed = {a["name"]: a for a in json.loads(daemon.cli("list", "--json").stdout)}
    assert listed["typo"]["state"] == "failed"
    for host, path in (("typo.localhost", "/"), ("localhost", "/typo/")):
        response = get(daemon, host, path)
        assert response.status_code == 503
        assert "'typo' has no working deployment yet" in response.text
        assert "`roost logs typo` says why; fix the app and `roost push` again" in response.text
        assert f"request id: {response.headers['x-request-id']}" in response.text
    assert get(daemon, "nosuchapp.localhost").status_code == 404


def test_a_crash_at_import_ends_with_the_exception_and_production_keeps_serving(daemon: Daemon, tmp_path: Path) -> None:
    app = write_app(
        tmp_path,
        "needsdb",
        {"roost.toml": 'name = "needsdb"\nentrypoint = "handler:handler"\n', "handler.py": NEEDS_DATABASE},
    )
    code, _, err = push(daemon, app)
    assert code == 1
    assert error_line(err).endswith("exited with status 3 before answering: KeyError: 'DATABASE_URL'"), err
    assert "no working deployment yet" in err
    assert daemon.cli("env", "needsdb", "set", "DATABASE_URL=sqlite://").returncode == 0
    pushed(daemon, app)
    assert get(daemon, "needsdb.localhost").text == "connected to sqlite://"
    production = json.loads(daemon.cli("deployments", "needsdb", "--json").stdout)[0]["id"]
    assert daemon.cli("env", "needsdb", "unset", "DATABASE_URL", "--yes").returncode == 0
    code, _, err = push(daemon, app)
    assert code == 1
    assert error_line(err).endswith("KeyError: 'DATABASE_URL'"), err
    assert f"production still serves the previous deployment ({production})" in err
    assert get(daemon, "needsdb.localhost").text == "connected to sqlite://"


def test_rollback_of_an_unknown_app_says_there_is_no_such_app(daemon: Daemon) -> None:
    for args in (("rollback", "nosuchapp"), ("rollback", "nosuchapp", "ab12cd34"), ("promote", "nosuchapp", "x")):
        result = daemon.cli(*args)
        assert result.returncode == 1
        assert "error: no app named 'nosuchapp'" in result.stderr, result.stderr


def test_a_signal_death_at_import_names_the_signal(daemon: Daemon, tmp_path: Path) -> None:
    source = "import os, signal\n\nprint('loading', flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)\n"
    app = write_app(tmp_path, "segv", {"roost.toml": 'name = "segv"\nentrypoint = "main:app"\n', "main.py": source})
    code, _, err = push(daemon, app)
    assert code == 1
    assert error_line(err).endswith("build check failed: killed by SIGSEGV before answering"), err
