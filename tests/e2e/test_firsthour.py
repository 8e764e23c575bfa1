"""The first hour at the terminal, through the real CLI and a real `roost serve`: the app taken
from the folder, typo suggestions, request log lines, asking before deleting, help and version."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from roost import __version__
from roost.cli import cli
from tests.e2e.apps import EXAMPLES, get, pushed
from tests.e2e.harness import Daemon, base_env, launch, module_daemon

daemon = module_daemon("firsthour")
STARTS = {"hot", "warm", "cold"}


@pytest.fixture(scope="module")
def apps(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Copies of two examples (an entrypoint app and a command app), pushed."""
    root = tmp_path_factory.mktemp("apps")
    folders = {}
    for name in ("flask-hello", "command-hello"):
        folders[name] = root / name
        shutil.copytree(EXAMPLES / name, folders[name], ignore=shutil.ignore_patterns("__pycache__"))
        pushed(daemon, folders[name])
    return folders


def requests_seen(daemon: Daemon, app: str, count: int) -> list[str]:
    """Send `count` GETs to `app`; the X-Roost-Start of each answer."""
    starts = []
    for _ in range(count):
        answer = get(daemon, f"{app}.localhost", "/?secret=not-logged")
        assert answer.status_code == 200, answer.text
        starts.append(answer.headers["x-roost-start"])
    return starts


def request_lines(daemon: Daemon, folder: Path, *args: str) -> list[dict[str, object]]:
    result = daemon.cli("logs", "--requests-only", "--json", *args, cwd=folder)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_command_in_the_app_folder_takes_the_app_from_roost_toml(daemon: Daemon, apps: dict[str, Path]) -> None:
    result = daemon.cli("info", "--json", cwd=apps["flask-hello"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["app"]["name"] == "flask-hello"
    assert "app flask-hello (from ./roost.toml)" in result.stderr
    nested = apps["flask-hello"] / "templates"
    nested.mkdir(exist_ok=True)
    listed = daemon.cli("deployments", "--quiet", cwd=nested)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.split()) == 1


def test_commands_with_more_words_take_the_app_from_the_folder(daemon: Daemon, apps: dict[str, Path]) -> None:
    folder = apps["command-hello"]
    assert daemon.cli("env", "set", "COLOR=blue", cwd=folder).returncode == 0
    listed = json.loads(daemon.cli("env", "list", "--reveal", "--json", cwd=folder).stdout)
    assert [e["value"] for e in listed if e["name"] == "COLOR"] == ["blue"]
    split = json.loads(daemon.cli("traffic", "--json", cwd=folder).stdout)
    assert [entry["weight"] for entry in split] == [100]
    events = daemon.cli("events", "--json", cwd=folder)
    assert {event["app"] for event in json.loads(events.stdout)} == {"command-hello"}


def test_outside_any_app_folder_the_command_asks_for_an_app(daemon: Daemon, tmp_path: Path) -> None:
    result = daemon.cli("logs", cwd=tmp_path)
    assert result.returncode == 2
    assert "error: `roost logs` needs an app, and no roost.toml names one in this folder" in result.stderr
    assert "hint: name it (`roost logs APP`" in result.stderr


def test_a_mistyped_app_is_answered_with_the_nearest_one(daemon: Daemon, apps: dict[str, Path]) -> None:
    result = daemon.cli("logs", "flask-helo", "-n", "5")
    assert result.returncode == 1
    assert "error: no app named 'flask-helo'" in result.stderr
    assert "hint: did you mean 'flask-hello'? roost logs flask-hello -n 5" in result.stderr
    unlike = daemon.cli("info", "zzzzzz")
    assert "did you mean" not in unlike.stderr


def test_request_lines_of_an_entrypoint_app_carry_status_and_start(daemon: Daemon, apps: dict[str, Path]) -> None:
    starts = requests_seen(daemon, "flask-hello", 3)
    lines = request_lines(daemon, apps["flask-hello"], "-n", "3")
    assert [line["start"] for line in lines] == starts
    for line in lines:
        assert (line["method"], line["path"], line["status"], line["kind"]) == ("GET", "/", 200, "request")
        assert str(line["instance"]).startswith("i-") or line["instance"] != "-"
        assert isinstance(line["duration_ms"], float)
    text = daemon.cli("logs", "-n", "1", "--requests-only", cwd=apps["flask-hello"]).stdout.strip()
    assert text.endswith(f"request: GET / 200 {lines[-1]['duration_ms']}ms {starts[-1]} {lines[-1]['instance']}")
    assert "not-logged" not in daemon.cli("logs", "flask-hello").stdout


def test_request_lines_of_a_command_app(daemon: Daemon, apps: dict[str, Path]) -> None:
    starts = requests_seen(daemon, "command-hello", 2)
    lines = request_lines(daemon, apps["command-hello"], "-n", "2")
    assert [(line["status"], line["start"]) for line in lines] == [(200, start) for start in starts]
    assert set(starts) <= STARTS
    assert all(line["instance"] != "-" for line in lines)


def test_logs_n_counts_lines_and_app_only_leaves_requests_out(daemon: Daemon, apps: dict[str, Path]) -> None:
    requests_seen(daemon, "flask-hello", 2)
    shown = daemon.cli("logs", "-n", "2", cwd=apps["flask-hello"]).stdout.splitlines()
    assert len(shown) == 2
    own = daemon.cli("logs", "--app-only", "--json", cwd=apps["flask-hello"]).stdout.splitlines()
    assert own
    assert {json.loads(line)["kind"] for line in own} == {"app"}


@pytest.fixture
def following(daemon: Daemon, apps: dict[str, Path]) -> Iterator[queue.Queue[str]]:
    """`roost logs -n 1 -f --requests-only` in the flask app's folder, its lines in a queue."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost", "logs", "-n", "1", "-f", "--requests-only"],
        env=base_env(daemon.home),
        cwd=apps["flask-hello"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    try:
        yield lines
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_logs_n_with_follow_prints_the_last_lines_then_new_ones(daemon: Daemon, following: queue.Queue[str]) -> None:
    requests_seen(daemon, "flask-hello", 1)
    first = following.get(timeout=30)
    assert "request: GET / 200" in first
    deadline = time.monotonic() + 30
    get(daemon, "flask-hello.localhost", "/followed")
    while time.monotonic() < deadline:
        line = following.get(timeout=max(0.1, deadline - time.monotonic()))
        if "GET /followed" in line:
            return
    pytest.fail("the followed request never showed")


def test_remove_without_a_terminal_refuses_without_yes(daemon: Daemon, apps: dict[str, Path]) -> None:
    refused = daemon.cli("remove", "command-hello", stdin="")
    assert refused.returncode == 2
    assert "refusing to delete app 'command-hello'" in refused.stderr
    assert "hint: run `roost remove command-hello --yes`" in refused.stderr
    assert daemon.cli("info", "command-hello", "--json").returncode == 0


def test_every_deletion_without_a_terminal_refuses_without_yes(daemon: Daemon, apps: dict[str, Path]) -> None:
    assert daemon.cli("env", "command-hello", "set", "KEEP=me").returncode == 0
    assert daemon.cli("domains", "command-hello", "add", "kept.example.com").returncode == 0
    assert daemon.cli("token", "create", "kept").returncode == 0
    for args, what in (
        (["env", "command-hello", "unset", "KEEP"], "delete KEEP of 'command-hello'"),
        (["domains", "command-hello", "remove", "kept.example.com"], "stop routing kept.example.com"),
        (["token", "revoke", "kept"], "revoke the token 'kept'"),
    ):
        refused = daemon.cli(*args, stdin="")
        assert refused.returncode == 2, (args, refused.stderr)
        assert f"refusing to {what}" in refused.stderr
        assert f"hint: run `roost {' '.join(args)} --yes`" in refused.stderr
    assert "KEEP" in daemon.cli("env", "command-hello", "list").stdout
    assert "kept.example.com" in daemon.cli("domains", "command-hello", "list").stdout
    assert "kept" in daemon.cli("token", "list").stdout
    assert daemon.cli("env", "command-hello", "unset", "KEEP", "--yes").returncode == 0
    assert "KEEP" not in daemon.cli("env", "command-hello", "list").stdout


def test_a_usage_error_is_one_line_and_a_hint(daemon: Daemon) -> None:
    for args, lines in (
        (
            ["lst"],
            [
                "error: No such command 'lst'. Did you mean 'list'?",
                "  hint: `roost --help` shows the usage and examples",
            ],
        ),
        (
            ["logs", "a", "b"],
            ["error: Got unexpected extra argument (b)", "  hint: `roost logs --help` shows the usage and examples"],
        ),
        (
            ["promote"],
            [
                "error: missing argument: `roost promote [APP] DEPLOYMENT` or `roost promote [APP] --alias BRANCH`",
                "  hint: for example: roost promote flask-hello ab12cd34",
            ],
        ),
    ):
        result = daemon.cli(*args)
        assert result.returncode == 2
        assert result.stderr.splitlines() == lines


def test_version_flag(daemon: Daemon) -> None:
    result = daemon.cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"roost {__version__}"


def test_the_credentials_error_says_how_to_reach_a_local_daemon(daemon: Daemon, tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "ROOST_URL": daemon.api_url}
    result = subprocess.run(
        [sys.executable, "-m", "roost", "list"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 1
    error, hint = result.stderr.splitlines()
    assert error.startswith(f"error: The daemon at {daemon.api_url} needs credentials")
    assert f"no local daemon socket at {tmp_path / 'roost.sock'}" in error
    assert "ROOST_HOME" in hint and f"`roost login {daemon.api_url}`" in hint
    assert error.endswith(".") and hint.endswith(".")


def test_an_empty_folder_is_no_app(daemon: Daemon, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = daemon.cli("push", cwd=empty)
    assert result.returncode == 1
    assert f"error: no app here ({empty}): add a roost.toml or run `roost init`" in result.stderr


def test_no_help_is_cut_with_an_ellipsis_and_each_has_an_example(daemon: Daemon) -> None:
    def every(group: click.Group, above: list[str]) -> list[list[str]]:
        found: list[list[str]] = []
        for name, command in group.commands.items():
            found.append([*above, name])
            if isinstance(command, click.Group):
                found += every(command, [*above, name])
        return found

    names = [[], *every(cli, [])]
    assert ["node", "join"] in names and ["token", "create"] in names  # subcommands too
    for words in names:
        result = daemon.cli(*words, "--help")
        assert result.returncode == 0, (words, result.stderr)
        assert "..." not in result.stdout, (words, result.stdout)
        assert "…" not in result.stdout, (words, result.stdout)
        if words:
            examples = result.stdout.partition("\n  Examples:\n    ")[2]
            assert "roost " in examples, words
    assert "Deployments:" in daemon.cli("--help").stdout


def test_completion_scripts(daemon: Daemon) -> None:
    for shell, marker in (("bash", "complete "), ("zsh", "compdef"), ("fish", "complete ")):
        result = daemon.cli("completion", shell)
        assert result.returncode == 0
        assert "_ROOST_COMPLETE" in result.stdout and marker in result.stdout


def test_completion_offers_the_daemons_apps(daemon: Daemon, apps: dict[str, Path]) -> None:
    env = {
        **base_env(daemon.home),
        "_ROOST_COMPLETE": "bash_complete",
        "COMP_WORDS": "roost logs fla",
        "COMP_CWORD": "2",
    }
    result = subprocess.run(
        [sys.executable, "-m", "roost"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.splitlines() == ["plain,flask-hello"], result


def test_serve_and_the_cli_share_a_default_home() -> None:
    """No ROOST_HOME anywhere: `roost serve` and a later `roost list` meet in ~/.local/share/roost.
    The user's home is a short folder of /tmp, not pytest's: under a pytest-xdist worker's deeper
    tmp_path, the sockets in ~/.local/share/roost would pass the 108 bytes a socket path may have."""
    with tempfile.TemporaryDirectory(prefix="roost-user-") as user:
        user_home = Path(user)
        env = {k: v for k, v in base_env(user_home).items() if k not in ("ROOST_HOME", "XDG_DATA_HOME")}
        env["HOME"], env["XDG_CONFIG_HOME"] = str(user_home), str(user_home / ".config")
        serve = [sys.executable, "-m", "roost", "serve", "--host", "127.0.0.1", "--port", "0", "--api-port", "0"]
        started = launch(serve, user_home / ".local" / "share" / "roost", env)
        try:
            started.wait_ready()
            result = subprocess.run(
                [sys.executable, "-m", "roost", "list", "--json"], env=env, capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout) == []
            assert (user_home / ".local" / "share" / "roost" / "roost.sock").is_socket()
        finally:
            started.stop()
