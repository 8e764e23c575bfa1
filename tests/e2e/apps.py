"""Helpers for end-to-end tests that push apps and talk to them through the edge."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.e2e.harness import REPO, Daemon

EXAMPLES = REPO / "examples"
ANSWERS = {  # each example's page says this
    "flask-hello": "Hello from Flask!",
    "fastapi-hello": "from FastAPI",
    "django-hello": "Hello from Django!",
    "handler-hello": "Hello, world!",
    "command-hello": "from a command app",
}
T = TypeVar("T")


def push(daemon: Daemon, path: Path, *args: str) -> tuple[int, str, str]:
    result = daemon.cli("push", str(path), *args, timeout=600)
    return result.returncode, result.stdout, result.stderr


def pushed(daemon: Daemon, path: Path, *args: str) -> str:
    """Push and insist it worked; the combined output."""
    code, out, err = push(daemon, path, *args)
    assert code == 0, f"push {path.name} failed:\n{out}\n{err}\n{daemon.output()}"
    return out + err


def get(daemon: Daemon, host: str, path: str = "/", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{daemon.edge_url}{path}", headers={**(headers or {}), "Host": host}, timeout=30)


def write_app(root: Path, name: str, files: dict[str, str]) -> Path:
    app = root / name
    app.mkdir()
    for file, text in files.items():
        (app / file).write_text(text)
    return app


def info(daemon: Daemon, app: str) -> dict[str, Any]:
    result = daemon.cli("info", app, "--json")
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 60.0, every: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy (a readiness check, not a sleep-and-hope)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def ready_instances(daemon: Daemon, app: str) -> list[dict[str, Any]]:
    return [i for i in info(daemon, app)["instances"] if i["state"] == "ready"]
