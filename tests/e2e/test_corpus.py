"""A corpus of real third-party apps, each pushed unmodified from its folder under
tests/e2e/corpus/ through one `roost serve` and checked with a real client: httpx for HTTP and
SSE, the `websockets` library for WebSockets. Each push's time is printed, and a table of them
at the end of the module (`pytest -s` shows them).

Build time: flask and gunicorn, starlette-sse and uvicorn share the same requirements.txt, so the
second of each pair reuses the first one's virtual environment (the builder caches venvs by a hash
of the dependency files); every daemon of the suite shares one uv cache (tests/e2e/harness.py).
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.e2e.apps import pushed
from tests.e2e.harness import Daemon, module_daemon

CORPUS = Path(__file__).parent / "corpus"

daemon = module_daemon("corpus")


@pytest.fixture(scope="module")
def push_times() -> Iterator[dict[str, float]]:
    times: dict[str, float] = {}
    yield times
    rows = "".join(f"\n  {name:<16} {seconds:6.1f}s" for name, seconds in times.items())
    print(f"\ncorpus push times ({len(times)} apps, {sum(times.values()):.1f}s in all):{rows}")


def deploy(daemon: Daemon, push_times: dict[str, float], folder: str) -> httpx.Client:
    """Push tests/e2e/corpus/FOLDER as it is; a client for its host on the edge."""
    started = time.monotonic()
    output = pushed(daemon, CORPUS / folder)
    push_times[folder] = time.monotonic() - started
    venv = "reused venv" if "reusing the virtual environment" in output else "new venv"
    print(f"\npush {folder}: {push_times[folder]:.1f}s ({venv})")
    host = f"corpus-{folder}.localhost"
    return httpx.Client(base_url=daemon.edge_url, headers={"Host": host}, timeout=60)


def websocket(daemon: Daemon, folder: str, path: str) -> ClientConnection:
    """A WebSocket client connection through the edge to corpus-FOLDER's `path`."""
    sock = socket.create_connection(("127.0.0.1", daemon.edge_port), timeout=60)
    return connect(f"ws://corpus-{folder}.localhost{path}", sock=sock, open_timeout=60, close_timeout=5)


def test_flask(daemon: Daemon, push_times: dict[str, float]) -> None:
    with deploy(daemon, push_times, "flask") as client:
        assert client.get("/").text == "Hello from Flask!"
        echoed = client.post("/echo", json={"n": [1, 2]}, headers={"User-Agent": "corpus/1"})
        assert echoed.json() == {"got": {"n": [1, 2]}, "agent": "corpus/1"}


def test_django_admin_login_and_whitenoise_static(daemon: Daemon, push_times: dict[str, float]) -> None:
    with deploy(daemon, push_times, "django") as client:
        admin = client.get("/admin/")
        assert admin.status_code == 302, admin.text
        assert admin.headers["location"] == "/admin/login/?next=/admin/"
        login = client.get("/admin/login/?next=/admin/")
        assert login.status_code == 200, login.text
        assert "Django administration" in login.text
        assert "csrftoken" in login.cookies
        stylesheet = re.search(r'href="(/static/admin/css/[^"]+\.css)"', login.text)
        assert stylesheet, login.text
        css = client.get(stylesheet.group(1))
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        assert css.headers["cache-control"] == "max-age=60, public", "WhiteNoise's header for an unhashed file"
        assert "body" in css.text


def test_fastapi_json_and_websocket_echo(daemon: Daemon, push_times: dict[str, float]) -> None:
    with deploy(daemon, push_times, "fastapi") as client:
        created = client.post("/items/7", json={"name": "lamp", "price": 2.5})
        assert created.json() == {"id": 7, "item": {"name": "lamp", "price": 2.5}, "total": 5.0}
        assert client.post("/items/7", json={"name": "lamp"}).status_code == 422
    with websocket(daemon, "fastapi", "/ws") as ws:
        for text in ("hello", "wörld"):
            ws.send(text)
            assert ws.recv(timeout=30) == f"echo: {text}"


def test_starlette_sse_streams_each_event_as_it_is_sent(daemon: Daemon, push_times: dict[str, float]) -> None:
    with deploy(daemon, push_times, "starlette-sse") as client, client.stream("GET", "/ticks?count=6") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        ticks: list[tuple[int, float, float]] = []  # (n, sent at, received at)
        for line in stream.iter_lines():
            if line.startswith("data: "):
                n, sent = line.removeprefix("data: ").split()
                ticks.append((int(n), float(sent), time.time()))
    assert [n for n, _, _ in ticks] == [0, 1, 2, 3, 4, 5]
    first_received, last_sent = ticks[0][2], ticks[-1][1]
    assert first_received < last_sent, "the first event arrived only after the app sent the last: buffered"


def test_litestar(daemon: Daemon, push_times: dict[str, float]) -> None:
    with deploy(daemon, push_times, "litestar") as client:
        assert client.get("/").json() == {"framework": "litestar"}
        greeted = client.post("/greet", json={"name": "ada"})
        assert (greeted.status_code, greeted.json()) == (201, {"hello": "ada"})
        assert client.post("/greet", json={"nom": "ada"}).status_code == 400


def test_quart_http_and_websocket(daemon: Daemon, push_times: dict[str, float]) -> None:
    with deploy(daemon, push_times, "quart") as client:
        assert client.get("/").text == "Hello from Quart!"
        assert client.post("/sum", json=[1, 2, 39]).json() == {"sum": 42}
    with websocket(daemon, "quart", "/ws") as ws:
        ws.send("roost")
        assert ws.recv(timeout=30) == "tsoor"


def test_aiohttp_as_a_command_with_its_own_websocket(daemon: Daemon, push_times: dict[str, float]) -> None:
    with deploy(daemon, push_times, "aiohttp") as client:
        assert client.get("/").json() == {"framework": "aiohttp", "path": "/"}
    with websocket(daemon, "aiohttp", "/ws") as ws:
        ws.send("quiet")
        assert ws.recv(timeout=30) == "QUIET"


def test_datasette_as_a_command(daemon: Daemon, push_times: dict[str, float]) -> None:
    with deploy(daemon, push_times, "datasette") as client:
        rows = client.get("/birds/birds.json?_shape=array&_sort=wingspan_cm")
        assert rows.status_code == 200, rows.text
        assert [(r["name"], r["wingspan_cm"]) for r in rows.json()] == [("robin", 22), ("swift", 45), ("heron", 180)]
        page = client.get("/birds/birds")
        assert page.status_code == 200
        assert "heron" in page.text


def test_gunicorn_as_a_command(daemon: Daemon, push_times: dict[str, float]) -> None:
    with deploy(daemon, push_times, "gunicorn") as client:
        answer = client.get("/")
        assert answer.status_code == 200, answer.text
        assert re.fullmatch(r"served by gunicorn/[\d.]+", answer.text), answer.text


def test_uvicorn_as_a_command(daemon: Daemon, push_times: dict[str, float]) -> None:
    with deploy(daemon, push_times, "uvicorn") as client:
        assert client.get("/?a=1").json() == {"server": "uvicorn", "query": {"a": "1"}}


def test_streamlit_page_and_its_websocket_session(daemon: Daemon, push_times: dict[str, float]) -> None:
    with deploy(daemon, push_times, "streamlit") as client:
        assert client.get("/_stcore/health").text == "ok"
        page = client.get("/")
        assert page.status_code == 200
        assert "<title>Streamlit</title>" in page.text
    with websocket(daemon, "streamlit", "/_stcore/stream") as ws:
        ws.send(b"Z\x00")  # a BackMsg protobuf with an empty `rerun_script` (field 11): run the script
        assert _received_containing(ws, b"Hello from Streamlit", timeout=60)


def _received_containing(ws: ClientConnection, needle: bytes, timeout: float) -> bool:
    """Read messages until one contains `needle`; False when none did before the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        if needle in (message if isinstance(message, bytes) else message.encode()):
            return True
    return False


def test_python_socketio_over_a_websocket(daemon: Daemon, push_times: dict[str, float]) -> None:
    """Engine.IO v4 packets as a Socket.IO client sends them: 0 open, 40 connect, 42 event."""
    with deploy(daemon, push_times, "socketio") as client:
        polling = client.get("/socket.io/?EIO=4&transport=polling")
        assert polling.status_code == 200
        assert polling.text.startswith('0{"sid":')
    with websocket(daemon, "socketio", "/socket.io/?EIO=4&transport=websocket") as ws:
        opened = ws.recv(timeout=30)
        assert isinstance(opened, str)
        assert opened.startswith("0") and json.loads(opened[1:])["upgrades"] == []
        ws.send("40")
        assert str(ws.recv(timeout=30)).startswith('40{"sid":')
        ws.send('42["shout","quiet please"]')
        assert ws.recv(timeout=30) == '42["heard","QUIET PLEASE"]'


def test_c_extension_wheel_numpy_under_falcon(daemon: Daemon, push_times: dict[str, float]) -> None:
    with deploy(daemon, push_times, "numpy-falcon") as client:
        stats = client.post("/stats", content=json.dumps([1, 2, 3, 4]), headers={"Content-Type": "application/json"})
        assert stats.status_code == 200, stats.text
        body = stats.json()
        assert (body["mean"], round(body["std"], 4)) == (2.5, 1.118)
        assert body["numpy"].startswith("2.")
