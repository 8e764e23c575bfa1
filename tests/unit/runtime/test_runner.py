"""The in-instance runner's pure parts, in process: telling app kinds apart, the handler
function's request and responses, the path prefix. (It runs in the app's venv for real
in the other tests.)"""

import asyncio
import json
from typing import Any

import pytest

from roost.runtime.runner import (
    HandlerApp,
    HandlerRequest,
    Kind,
    PrefixMiddleware,
    WebSocketRefusal,
    classify,
    to_response,
)


async def asgi_function(scope: Any, receive: Any, send: Any) -> None:
    return None


class AsgiObject:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None


def wsgi_function(environ: Any, start_response: Any) -> list[bytes]:
    return []


class WsgiObject:
    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        return []


def sync_handler(request: HandlerRequest) -> str:
    return "hi"


async def async_handler(request: HandlerRequest) -> str:
    return "hi"


def test_kinds_are_told_apart_by_signature() -> None:
    assert classify(asgi_function) is Kind.ASGI
    assert classify(AsgiObject()) is Kind.ASGI
    assert classify(wsgi_function) is Kind.WSGI
    assert classify(WsgiObject()) is Kind.WSGI
    assert classify(sync_handler) is Kind.HANDLER
    assert classify(async_handler) is Kind.HANDLER


def test_what_cannot_be_served_is_refused() -> None:
    with pytest.raises(TypeError, match="not a callable"):
        classify(42)
    with pytest.raises(TypeError, match="cannot tell"):
        classify(lambda a, b, c, d: None)
    with pytest.raises(TypeError, match="not a callable"):
        classify(AsgiObject)


def test_each_return_type_becomes_a_response() -> None:
    assert to_response("hi") == (200, [(b"content-type", b"text/plain; charset=utf-8")], b"hi")
    assert to_response(b"\x00") == (200, [(b"content-type", b"application/octet-stream")], b"\x00")
    assert to_response({"a": 1}) == (200, [(b"content-type", b"application/json")], b'{"a": 1}')
    assert to_response(None) == (204, [], b"")
    status, headers, body = to_response(("gone", 410, {"X-Why": "because"}))
    assert (status, body) == (410, b"gone")
    assert (b"x-why", b"because") in headers
    assert to_response(([1, 2], 201))[0] == 201
    with pytest.raises(TypeError, match="returned int"):
        to_response(42)


def test_the_request_object() -> None:
    scope = {
        "method": "POST",
        "path": "/pre/items",
        "root_path": "/pre",
        "query_string": b"a=1&a=2&b=",
        "headers": [(b"Content-Type", b"application/json")],
        "client": ("10.0.0.1", 1234),
    }
    request = HandlerRequest(scope, b'{"x": 1}')
    assert (request.method, request.path, request.root_path) == ("POST", "/items", "/pre")
    assert request.query == {"a": "2", "b": ""}
    assert request.query_list == [("a", "1"), ("a", "2"), ("b", "")]
    assert request.headers == {"content-type": "application/json"}
    assert request.json() == {"x": 1}
    assert request.text() == '{"x": 1}'
    assert request.client == "10.0.0.1"


async def call(app: Any, scope: dict[str, Any], body: bytes = b"") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http_scope(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers or [],
    }


async def test_a_handler_serves_as_asgi_and_its_errors_are_500() -> None:
    def handler(request: HandlerRequest) -> object:
        if request.path == "/boom":
            raise ValueError("on purpose")
        return {"path": request.path}

    app = HandlerApp(handler)
    sent = await call(app, http_scope("/x"))
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {"path": "/x"}
    sent = await call(app, http_scope("/boom"))
    assert sent[0]["status"] == 500


async def test_an_async_handler_is_awaited() -> None:
    async def handler(request: HandlerRequest) -> object:
        await asyncio.sleep(0)
        return ("made", 201)

    sent = await call(HandlerApp(handler), http_scope("/"))
    assert sent[0]["status"] == 201


async def test_the_forwarded_prefix_becomes_root_path() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    await PrefixMiddleware(app)(http_scope("/items", [(b"x-forwarded-prefix", b"/shop/")]), None, None)  # type: ignore[arg-type]
    assert (seen[0]["root_path"], seen[0]["path"], seen[0]["raw_path"]) == ("/shop", "/shop/items", b"/shop/items")
    await PrefixMiddleware(app)(http_scope("/items"), None, None)  # type: ignore[arg-type]
    assert (seen[1]["root_path"], seen[1]["path"]) == ("", "/items")


def websocket_scope(extensions: dict[str, Any]) -> dict[str, Any]:
    return {**http_scope("/ws"), "type": "websocket", "extensions": extensions}


async def test_a_handler_refuses_a_websocket_with_a_400_that_says_why() -> None:
    app = WebSocketRefusal(HandlerApp(lambda request: "hi"), Kind.HANDLER)
    sent = await call(app, websocket_scope({"websocket.http.response": {}}))
    assert [m["type"] for m in sent] == ["websocket.http.response.start", "websocket.http.response.body"]
    assert sent[0]["status"] == 400
    assert b"handler function" in sent[1]["body"] and b"WebSockets need an ASGI app" in sent[1]["body"]
    sent = await call(app, http_scope("/"))  # HTTP goes through
    assert (sent[0]["status"], sent[1]["body"]) == (200, b"hi")


async def test_without_the_denial_extension_the_refusal_is_a_close() -> None:
    app = WebSocketRefusal(HandlerApp(lambda request: "hi"), Kind.WSGI)
    sent = await call(app, websocket_scope({}))
    assert sent == [{"type": "websocket.close", "code": 1003}]
