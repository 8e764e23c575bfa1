"""The environment of an instance is built from nothing: the daemon's own never leaks in."""

from pathlib import Path

import pytest

from roost.model import AppConfig, AppName, DeploymentId
from roost.runtime.environ import process_env
from roost.runtime.protocol import DeploymentSpec


def spec(env: dict[str, str]) -> DeploymentSpec:
    return DeploymentSpec(AppName("app"), DeploymentId("d1234567"), Path("/code"), Path("/venv"), AppConfig(), env)


def test_only_the_listed_names_and_the_apps_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOST_TEST_DAEMON_MARKER", "leak")
    env = process_env(spec({"GREETING": "hi"}), "i123", Path("/tmp/i123"), 8123)
    assert "ROOST_TEST_DAEMON_MARKER" not in env
    assert set(env) == {
        "LANG",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "MALLOC_ARENA_MAX",
        "PATH",
        "VIRTUAL_ENV",
        "TMPDIR",
        "HOME",
        "PORT",
        "ROOST_APP",
        "ROOST_DEPLOYMENT",
        "ROOST_INSTANCE",
        "GREETING",
    }
    assert env["PATH"] == "/venv/bin:/usr/bin:/bin"
    assert (env["PORT"], env["TMPDIR"], env["HOME"], env["ROOST_INSTANCE"]) == (
        "8123",
        "/tmp/i123",
        "/tmp/i123",
        "i123",
    )


def test_the_app_cannot_override_what_the_runtime_owns() -> None:
    env = process_env(
        spec({"PORT": "1", "HOME": "/root", "ROOST_INSTANCE": "x", "LANG": "de_DE.UTF-8"}), "i9", Path("/t"), 80
    )
    assert (env["PORT"], env["HOME"], env["ROOST_INSTANCE"]) == ("80", "/t", "i9")
    assert env["LANG"] == "de_DE.UTF-8"


def test_a_zygote_has_no_port() -> None:
    assert "PORT" not in process_env(spec({}), "zygote", Path("/t"), None)
