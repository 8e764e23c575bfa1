"""The runner's WebSocket protocol in a real venv: a deployment built before the runner asked
for `websockets` (uvicorn 0.34, no WebSocket library) still serves HTTP and says once why
WebSockets may be missing, instead of failing to start after a Roost upgrade."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from uv import find_uv_bin

from roost.runtime.spawn import RUNNER

TIMEOUT = 60.0
OLD_RUNNER_REQUIREMENTS = ("uvicorn==0.34.0", "httptools>=0.6.4", "a2wsgi>=1.10")
APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"still serving"})
"""


@pytest.fixture(scope="module")
def old_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("old-venv") / "venv"
    uv = find_uv_bin()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(root)], check=True, env=env, timeout=120)
    install = [uv, "pip", "install", "-q", "--python", str(root / "bin" / "python"), *OLD_RUNNER_REQUIREMENTS]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"could not build the old venv with uv: {result.stderr.strip()[-500:]}")
    return root


def test_a_venv_from_before_websockets_still_serves_and_says_why(old_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(APP)
    listener = socket.create_server(("127.0.0.1", 0))
    notify_read, notify_write = os.pipe()
    argv = [str(old_venv / "bin" / "python"), str(RUNNER), "serve", "--app", "main:app"]
    argv += ["--fd", str(listener.fileno()), "--notify-fd", str(notify_write)]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, pass_fds=(listener.fileno(), notify_write), stderr=subprocess.PIPE, text=True
    )
    os.close(notify_write)
    try:
        readable, _, _ = select.select([notify_read], [], [], TIMEOUT)
        assert readable and os.read(notify_read, 16) == b"ready\n", "the runner never said it was ready"
        port = listener.getsockname()[1]
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=TIMEOUT)
        assert (response.status_code, response.text) == (200, "still serving")
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=TIMEOUT)
        os.close(notify_read)
        listener.close()
    said = [line for line in stderr.splitlines() if "WebSockets may be unavailable" in line]
    assert len(said) == 1 and "push again to rebuild it" in said[0], stderr
