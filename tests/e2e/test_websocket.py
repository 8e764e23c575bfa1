"""WebSockets through a real `roost serve`, with a real client (the `websockets` library):
an ASGI app echoes without naming a WebSocket library (the runner brings one), and a WSGI
app or a handler function answers the handshake with a 400 that says why, not a 404.

One daemon for the module; FastAPI and Starlette apps whose requirements list only the
framework, and the Flask and handler examples.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.e2e.apps import EXAMPLES, get, pushed, write_app
from tests.e2e.harness import Daemon, module_daemon

TIMEOUT = 30.0

FASTAPI_FILES = {
    "roost.toml": 'name = "ws-fastapi"\nentrypoint = "main:app"\n',
    "requirements.txt": "fastapi\n",
    "main.py": """
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.get("/")
async def index() -> dict[str, str]:
    return {"hello": "fastapi"}


@app.websocket("/ws")
async def echo(socket: WebSocket) -> None:
    await socket.accept()
    try:
        while True:
            await socket.send_text("fastapi: " + await socket.receive_text())
    except WebSocketDisconnect:
        pass
""",
}

STARLETTE_FILES = {
    "roost.toml": 'name = "ws-starlette"\nentrypoint = "main:app"\n',
    "requirements.txt": "starlette\n",
    "main.py": """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def index(request):
    return PlainTextResponse("hello from starlette")


async def echo(socket: WebSocket) -> None:
    await socket.accept()
    try:
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await socket.send_bytes(message["bytes"])
            else:
                await socket.send_text("starlette: " + message["text"])
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[Route("/", index), WebSocketRoute("/ws", echo)])
""",
}

daemon = module_daemon("websocket")


@pytest.fixture(scope="module")
def served(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Daemon:
    root = tmp_path_factory.mktemp("ws-apps")
    pushed(daemon, write_app(root, "ws-fastapi", FASTAPI_FILES))
    pushed(daemon, write_app(root, "ws-starlette", STARLETTE_FILES))
    pushed(daemon, EXAMPLES / "flask-hello")
    pushed(daemon, EXAMPLES / "handler-hello")
    return daemon


@contextlib.contextmanager
def open_ws(daemon: Daemon, app: str, path: str = "/ws") -> Iterator[ClientConnection]:
    """A WebSocket to `app` through the edge (the Host header names the app; an empty `app`
    means the bare domain, where the path does)."""
    host = f"{app}.localhost" if app else "localhost"
    with (
        socket.create_connection(("127.0.0.1", daemon.edge_port), timeout=TIMEOUT) as sock,
        connect(f"ws://{host}{path}", sock=sock, open_timeout=TIMEOUT) as ws,
    ):
        yield ws


def refusal(daemon: Daemon, app: str) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as caught, open_ws(daemon, app):
        pass
    return caught.value


def test_a_fastapi_app_without_a_websocket_requirement_echoes(served: Daemon) -> None:
    with open_ws(served, "ws-fastapi") as ws:
        for text in ("hello through roost", "ünïcode ✓", "x" * 70_000):  # 7-, 16- and 64-bit lengths
            ws.send(text)
            assert ws.recv(timeout=TIMEOUT) == f"fastapi: {text}"


def test_a_plain_starlette_app_echoes_text_and_bytes(served: Daemon) -> None:
    with open_ws(served, "ws-starlette") as ws:
        ws.send("hello")
        assert ws.recv(timeout=TIMEOUT) == "starlette: hello"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=TIMEOUT) == b"\x00\x01binary"
        ws.close()
        assert ws.close_code == 1000


def test_an_echo_under_the_apps_path_prefix(served: Daemon) -> None:
    with open_ws(served, "", "/ws-fastapi/ws") as ws:
        ws.send("by path")
        assert ws.recv(timeout=TIMEOUT) == "fastapi: by path"


def test_the_venv_holds_no_websocket_requirement_of_the_app(served: Daemon) -> None:
    """What makes the echoes above meaningful: the apps named only their framework."""
    for app in ("ws-fastapi", "ws-starlette"):
        [requirements] = (served.home / "deployments" / app).glob("*/code/requirements.txt")
        assert "websocket" not in requirements.read_text().lower()


def test_a_wsgi_app_refuses_the_handshake_and_says_why(served: Daemon) -> None:
    refused = refusal(served, "flask-hello")
    assert refused.response.status_code == 400, refused.response
    body = refused.response.body.decode()
    assert "WSGI app" in body and "WebSockets need an ASGI app" in body, body
    assert "Hello from Flask!" in get(served, "flask-hello.localhost").text  # HTTP still served


def test_a_handler_app_refuses_the_handshake_and_says_why(served: Daemon) -> None:
    refused = refusal(served, "handler-hello")
    assert refused.response.status_code == 400, refused.response
    body = refused.response.body.decode()
    assert "handler function" in body and "WebSockets need an ASGI app" in body, body
    assert get(served, "handler-hello.localhost").text == "Hello, world!\n"
