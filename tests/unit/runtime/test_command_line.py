"""A command app's `command` as the /bin/sh line Roost runs: `exec` in front of a simple command,
after leading assignments, and nowhere when the line already chains or execs. Each line is also
run by the real /bin/sh to show that what it prints is what a user meant."""

from __future__ import annotations

import doctest
import subprocess

import pytest

from roost.runtime import spawn
from roost.runtime.spawn import SpawnFailed, command_argv


@pytest.mark.parametrize(
    ("command", "line"),
    [
        ("gunicorn main:app -b 127.0.0.1:$PORT", "exec gunicorn main:app -b 127.0.0.1:$PORT"),
        ("  uvicorn main:app --port ${PORT}  ", "exec uvicorn main:app --port ${PORT}"),
        ('WEB_CONCURRENCY=2 X="a b" gunicorn m:a', 'WEB_CONCURRENCY=2 X="a b" exec gunicorn m:a'),
        ('python -c "import os; print(1)"', 'exec python -c "import os; print(1)"'),
        ("exec python server.py", "exec python server.py"),
        ("cd src && exec python server.py", "cd src && exec python server.py"),
        ("migrate; serve", "migrate; serve"),
    ],
)
def test_exec_goes_where_it_can(command: str, line: str) -> None:
    assert command_argv(command) == ["/bin/sh", "-c", line]


@pytest.mark.parametrize(
    ("command", "printed"),
    [
        ("echo $PORT ${PORT} $GREETING", "8123 8123 hi there\n"),
        ("GREETING=bye printenv GREETING", "bye\n"),
        ("printf '%s|' 'a b' \"$GREETING\"", "a b|hi there|"),
        ("exec echo $PORT", "8123\n"),
        ("echo one && echo two", "one\ntwo\n"),
    ],
)
def test_the_shell_expands_what_users_expect(command: str, printed: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "PORT": "8123", "GREETING": "hi there"}
    done = subprocess.run(command_argv(command), env=env, capture_output=True, text=True, timeout=10, check=False)
    assert (done.returncode, done.stdout) == (0, printed), done.stderr


def test_a_missing_program_is_the_shells_127_with_its_name() -> None:
    done = subprocess.run(command_argv("nosuch --port $PORT"), capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 127
    assert "nosuch: not found" in done.stderr


def test_an_empty_command_is_refused() -> None:
    with pytest.raises(SpawnFailed, match="the command is empty"):
        command_argv("   ")


def test_the_docstring_examples_hold() -> None:
    result = doctest.testmod(spawn, verbose=False, report=True)
    assert result.attempted > 0
    assert result.failed == 0
