"""Roost's in-instance runner: imports an app's `module:object` and serves it.

Runs INSIDE the deployment's virtual environment as `<venv>/bin/python runner.py
serve|zygote ...`: the standard library plus uvicorn, httptools, uvloop,
websockets and a2wsgi only. It must never import roost (the venv does not have
it), and it never binds a port: the supervisor hands it an already listening
socket.

Three kinds of object are served, told apart by their signature: ASGI
(`async def app(scope, receive, send)` or an object with such a `__call__`),
WSGI (`def app(environ, start_response)`, served through a2wsgi) and a plain
handler function, `def handler(request)` or `async def handler(request)`::

    def handler(request):
        if request.path == "/json":
            return {"hello": request.query.get("name", "world")}   # JSON
        if request.method == "POST":
            return (request.body, 201, {"Content-Type": "text/plain"})
        return "Hello!\\n"                                          # text/plain

The handler's `request` has `method` ("GET"), `path` ("/users/7", below the
app's mount point), `root_path` ("/hello" when the app is reached under a path
prefix, else ""), `query` (a dict, the last value of each name wins) and
`query_list` (every (name, value) pair), `headers` (a dict with lower-case
names), `body` (bytes), `client` (the caller's address or ""), and the methods
`text()` (the body as UTF-8) and `json()` (the body parsed as JSON). It may
return a `str` (200, text/plain), `bytes` (200, application/octet-stream), a
`dict` or `list` (200, application/json), None (204), or a tuple `(body,
status)` or `(body, status, headers)`. A sync handler runs in a thread so it
never blocks the server; an exception answers 500 and its traceback goes to
the log.

Modes:

- `serve --app main:app --fd 3 [--notify-fd 4]`: serve on the inherited
  socket; write "ready" to the notify pipe once serving (fresh starts).
- `zygote --app main:app --control-fd 3`: import the app, warm it with one
  request, freeze the GC and wait, thread-free, for fork commands on the
  control socket (a SOCK_SEQPACKET Unix socket). A command is a JSON message
  `{"op": "fork", "instance": ID, "env": {...}}` carrying two descriptors, the
  listening socket and the instance's output pipe, and optionally a third, the
  gate: the child serves only after reading a byte there (the daemon writes it
  once the child is in its own cgroup). The zygote answers
  `{"op": "forked", "instance": ID, "pid": N}`, reaps its children by pidfd
  and reports `{"op": "exited", "pid": N, "status": WAIT_STATUS}`. EOF on the
  control socket (the daemon is gone) ends the zygote. To keep page faults and
  the fork itself off a cold start's path, the zygote keeps one *spare* child
  forked ahead, detached and warmed; a fork command specializes the spare
  (output, env, socket) and a new spare is forked a moment later. Each spare
  is announced as `{"op": "spare", "pid": N}`, so that the daemon can move it
  into a cgroup before a request needs it (a cgroup move waits for an RCU
  grace period: milliseconds).

One file on purpose: it runs as a script inside a foreign venv, where no
sibling module can be imported without shadowing the app's own.

WebSockets: an ASGI app gets them from uvicorn's `websockets-sansio` protocol (the
`websockets` library is a runner requirement, so an app need not name one; the choice
is measured in bench/websocket.py). A WSGI app or a handler function cannot take a
WebSocket: the handshake is answered 400 with a body that says why, not a 404.

A `X-Forwarded-Prefix` request header (set by Roost's edge when the app is
reached as `/<app>/...`) becomes the ASGI `root_path` and WSGI `SCRIPT_NAME`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import inspect
import io
import json
import os
import random
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Collection, Coroutine, MutableMapping
from enum import Enum
from typing import Any, NoReturn
from urllib.parse import parse_qsl

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

EXIT_USAGE = 2
EXIT_STARTUP_FAILED = 3
EXIT_CANNOT_PRELOAD = 4  # the app started threads at import: forking it would be unsafe
LIMIT_MESSAGE = 64 * 1024
TIMEOUT_WARM = 10.0
TIMEOUT_WARM_THREADS = 2.0  # how long the warm-up's own threads (a sync endpoint's worker) may take to end
TIMEOUT_GRACEFUL_SHUTDOWN = 5
SPARE_DELAY = 0.05  # after the spare is taken, the next one forks once the new instance had a head start
SPARE_RETRY = 1.0  # a spare that died idle is replaced after this
TIMEOUT_KEEP_ALIVE = 75  # longer than the edge keeps an idle upstream connection
WEBSOCKET_PROTOCOL = "websockets-sansio"  # uvicorn's name; bench/websocket.py measured it against wsproto
STATUS_NO_WEBSOCKETS = 400


class Kind(Enum):
    ASGI = "asgi"
    WSGI = "wsgi"
    HANDLER = "handler"


def say(line: str) -> None:
    """One line of the runner's own to stderr, which Roost captures into the app's log."""
    sys.stderr.write(f"roost-runner: {line}\n")
    sys.stderr.flush()


# -- loading -----------------------------------------------------------------------------------------------------------


def load_target(entrypoint: str) -> object:
    """Import `module:attr.attr` from the working directory (the app's code)."""
    module_name, _, attribute = entrypoint.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"entrypoint {entrypoint!r} must look like 'module:object'")
    target: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def _positional_count(function: Callable[..., object]) -> int:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return -1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds)


def _is_async(target: object) -> bool:
    call = getattr(target, "__call__", None)  # noqa: B004 - an object's own __call__ tells ASGI from WSGI
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(call)


def classify(target: object) -> Kind:
    """ASGI (async, 3 arguments), WSGI (2 arguments) or a handler (1 argument)."""
    if not callable(target) or inspect.isclass(target):
        raise TypeError(f"{target!r} is not a callable app")
    count = _positional_count(target)
    if _is_async(target):
        if count == 3:
            return Kind.ASGI
        if count == 1:
            return Kind.HANDLER
    elif count == 2:
        return Kind.WSGI
    elif count == 1:
        return Kind.HANDLER
    raise TypeError(
        f"cannot tell how to serve {target!r}: expected ASGI (async, 3 arguments), WSGI (2 arguments) "
        "or a handler function (1 argument)"
    )


# -- the handler function's request and response -----------------------------------------------------------------------


class HandlerRequest:
    """One HTTP request as a handler function sees it (see the module docstring)."""

    __slots__ = ("body", "client", "headers", "method", "path", "query", "query_list", "root_path")

    def __init__(self, scope: Scope, body: bytes) -> None:
        self.method: str = scope.get("method", "GET")
        self.root_path: str = scope.get("root_path", "")
        path: str = scope.get("path", "/")
        if self.root_path and path.startswith(self.root_path):
            path = path[len(self.root_path) :] or "/"
        self.path = path
        query_string = scope.get("query_string", b"").decode("latin-1")
        self.query_list: list[tuple[str, str]] = parse_qsl(query_string, keep_blank_values=True)
        self.query: dict[str, str] = dict(self.query_list)
        self.headers: dict[str, str] = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])
        }
        self.body = body
        client = scope.get("client")
        self.client: str = client[0] if client else ""

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


Response = tuple[int, list[tuple[bytes, bytes]], bytes]


def _encode_body(body: object) -> tuple[bytes, str]:
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), "application/octet-stream"
    if isinstance(body, dict | list):
        return json.dumps(body).encode(), "application/json"
    if body is None:
        return b"", ""
    raise TypeError(f"a handler returned {type(body).__name__}; expected str, bytes, dict, list or None")


def to_response(result: object) -> Response:
    """A handler's return value as (status, headers, body)."""
    status, extra = (200 if result is not None else 204), {}
    body = result
    if isinstance(result, tuple):
        if not 1 <= len(result) <= 3:
            raise TypeError("a handler's tuple must be (body, status) or (body, status, headers)")
        body = result[0]
        status = int(result[1]) if len(result) > 1 else 200
        extra = dict(result[2]) if len(result) > 2 else {}
    data, content_type = _encode_body(body)
    headers = {"content-type": content_type} if content_type else {}
    headers.update({str(k).lower(): str(v) for k, v in extra.items()})
    encoded = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return status, encoded, data


class HandlerApp:
    """An ASGI app around a one-argument handler function."""

    def __init__(self, handler: Callable[[HandlerRequest], object]) -> None:
        self.handler = handler
        self.is_async = _is_async(handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan_noop(receive, send)
        elif scope["type"] == "http":
            request = HandlerRequest(scope, await _read_body(receive))
            await _send_response(send, await self.respond(request))

    async def respond(self, request: HandlerRequest) -> Response:
        try:
            if self.is_async:
                result = await self.handler(request)  # type: ignore[misc]
            else:
                result = await asyncio.get_running_loop().run_in_executor(None, self.handler, request)
            return to_response(result)
        except Exception:  # noqa: BLE001 - the app's own error becomes a 500 and a traceback in its log
            traceback.print_exc()
            return 500, [(b"content-type", b"text/plain; charset=utf-8")], b"Internal Server Error\n"


async def _lifespan_noop(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_response(send: Send, response: Response) -> None:
    status, headers, body = response
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- serving -----------------------------------------------------------------------------------------------------------


class PrefixMiddleware:
    """`X-Forwarded-Prefix: /hello` becomes root_path (and so SCRIPT_NAME), as uvicorn's --root-path does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            for name, value in scope.get("headers", ()):
                if name == b"x-forwarded-prefix":
                    prefix = value.decode("latin-1").rstrip("/")
                    if prefix.startswith("/"):
                        scope = dict(scope)
                        scope["root_path"] = prefix
                        scope["path"] = prefix + scope["path"]
                        scope["raw_path"] = prefix.encode("latin-1") + scope.get("raw_path", b"")
                    break
        await self.app(scope, receive, send)


class WebSocketRefusal:
    """A WSGI app or a handler function has no way to take a WebSocket: its handshake is
    answered `STATUS_NO_WEBSOCKETS` with a body that says so (ASGI's WebSocket denial
    response), instead of the bare 403 of a close before accept. HTTP goes to the app."""

    def __init__(self, app: ASGIApp, kind: Kind) -> None:
        self.app = app
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        await receive()  # websocket.connect
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1003})
            return
        body = self.explanation().encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": STATUS_NO_WEBSOCKETS, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})

    def explanation(self) -> str:
        what = "a WSGI app" if self.kind is Kind.WSGI else "a handler function"
        return (
            f"This app is {what}, which cannot accept WebSocket connections. "
            "WebSockets need an ASGI app (async def app(scope, receive, send): FastAPI, Starlette, "
            "Quart, Django's asgi.py...).\n"
        )


def as_asgi(target: object, kind: Kind) -> ASGIApp:
    """The ASGI app uvicorn serves for any kind of target."""
    if kind is Kind.WSGI:
        a2wsgi: Any = importlib.import_module("a2wsgi")
        app: ASGIApp = WebSocketRefusal(a2wsgi.WSGIMiddleware(target), kind)
    elif kind is Kind.HANDLER:
        app = WebSocketRefusal(HandlerApp(target), kind)  # type: ignore[arg-type]
    else:
        app = target  # type: ignore[assignment]
    return PrefixMiddleware(app)


def websocket_protocol() -> str:
    """`WEBSOCKET_PROTOCOL` when this venv can run it (every venv built since the runner asked
    for websockets); else uvicorn's "auto", said once, for a deployment built before."""
    try:
        importlib.import_module("uvicorn.protocols.websockets.websockets_sansio_impl")
    except ImportError as exc:
        say(f"WebSockets may be unavailable: this environment predates them ({exc}); push again to rebuild it")
        return "auto"
    return WEBSOCKET_PROTOCOL


def make_config(app: ASGIApp, kind: Kind) -> Any:
    """A loaded uvicorn Config; built once in the zygote so forked instances start at once."""
    import uvicorn

    config = uvicorn.Config(
        app,
        interface="asgi3",
        http="httptools",
        ws=websocket_protocol(),  # named, not "auto", which settles for none and answers 404
        loop="none",
        lifespan="auto" if kind is Kind.ASGI else "off",
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        timeout_keep_alive=TIMEOUT_KEEP_ALIVE,
        timeout_graceful_shutdown=TIMEOUT_GRACEFUL_SHUTDOWN,
    )
    config.load()
    return config


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        uvloop: Any = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run_on(loop_factory: Callable[[], asyncio.AbstractEventLoop], main: Coroutine[Any, Any, object]) -> None:
    """`asyncio.run` on a loop of our choice (asyncio.Runner before Python 3.11 had none)."""
    loop = loop_factory()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def make_server(config: Any, notify_fd: int | None) -> Any:
    """A uvicorn Server that writes "ready" to `notify_fd` (if any) once it serves."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and notify_fd is not None:
                os.write(notify_fd, b"ready\n")
                os.close(notify_fd)

    return Server(config)


def serve(server: Any, sock: socket.socket, loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> int:
    """Serve until SIGTERM; the exit status (0, or 3 when the app's startup failed)."""
    run_on(loop_factory, server.serve(sockets=[sock]))
    if not server.started:
        say("the app's startup failed; not serving")
        return EXIT_STARTUP_FAILED
    return 0


# -- warming -----------------------------------------------------------------------------------------------------------


def _warm_scope() -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost"), (b"user-agent", b"roost-warmup")],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
        "state": {},
    }


async def _warm_asgi(app: ASGIApp) -> None:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        return None

    await asyncio.wait_for(app(_warm_scope(), receive, send), TIMEOUT_WARM)


def _warm_wsgi(app: Callable[..., Any]) -> None:
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    result = app(environ, lambda status, headers, exc_info=None: None)
    try:
        for _ in result:
            pass
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


def warm(target: object, kind: Kind) -> None:
    """One internal `GET /` so the first real request finds everything imported and cached.
    Its answer does not matter; it runs on a throwaway stdlib loop, which leaves no thread behind."""
    try:
        if kind is Kind.WSGI:
            _warm_wsgi(target)  # type: ignore[arg-type]
        elif kind is Kind.HANDLER:
            handler = HandlerApp(target)  # type: ignore[arg-type]
            if handler.is_async:
                run_on(asyncio.SelectorEventLoop, handler.respond(HandlerRequest(_warm_scope(), b"")))
            else:
                to_response(target(HandlerRequest(_warm_scope(), b"")))  # type: ignore[operator]
        else:
            run_on(asyncio.SelectorEventLoop, _warm_asgi(target))  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - warming is best effort: the real requests will tell
        say(f"warm-up request failed ({type(exc).__name__}: {exc}); serving anyway")


# -- the zygote --------------------------------------------------------------------------------------------------------


class Spare:
    """A child forked ahead of demand: detached, its loop built and the request path warmed (so its
    copy-on-write page faults are paid), it waits on `channel` to become an instance. Android's pool
    of unspecialized app processes, of one."""

    __slots__ = ("channel", "pid", "pidfd")

    def __init__(self, channel: socket.socket, pid: int, pidfd: int) -> None:
        self.channel = channel
        self.pid = pid
        self.pidfd = pidfd


class ForkServer:
    """The zygote's loop: hand each fork command to the spare (or fork anew), keep one spare
    ready, reap children by pidfd, report their exits. Single-threaded; no event loop."""

    def __init__(self, control: socket.socket, config: Any) -> None:
        self.control = control
        self.config = config
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, int] = {}  # pidfd -> pid, of instances
        self.tmpdirs: dict[int, str] = {}  # pid -> its TMPDIR, to wipe when it is reaped
        self.spare: Spare | None = None
        self.spare_due: float | None = None  # when to fork the next spare (monotonic)

    def send(self, message: dict[str, Any]) -> None:
        self.control.sendall(json.dumps(message).encode())

    def run(self) -> int:
        self.selector.register(self.control, selectors.EVENT_READ)
        self.spare_due = time.monotonic()
        try:
            while self.step():
                pass
        finally:
            self.drop_spare()
        return 0

    def step(self) -> bool:
        """One turn of the loop; False once the daemon is gone (EOF on the control socket)."""
        timeout = None if self.spare_due is None else max(0.0, self.spare_due - time.monotonic())
        for key, _ in self.selector.select(timeout):
            if key.fileobj is self.control:
                if not self.command():
                    return False
            elif self.spare is not None and key.fd == self.spare.pidfd:
                self.reap_spare()
            else:
                self.reap(key.fd)
        if self.spare is None and self.spare_due is not None and time.monotonic() >= self.spare_due:
            self.fork_spare()
        return True

    def command(self) -> bool:
        data, fds, _, _ = socket.recv_fds(self.control, LIMIT_MESSAGE, 4)
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        request = json.loads(data)
        if request.get("op") != "fork" or len(fds) not in (2, 3):
            for fd in fds:
                os.close(fd)
            self.send({"op": "failed", "instance": request.get("instance"), "error": "malformed fork command"})
            return True
        try:
            pid = self.hand_to_spare(request, fds) or self.fork(request, fds)
        finally:
            for fd in fds:
                os.close(fd)
        self.send({"op": "forked", "instance": request["instance"], "pid": pid})
        return True

    def hand_to_spare(self, request: dict[str, Any], fds: list[int]) -> int | None:
        spare, self.spare = self.spare, None
        if spare is None:
            return None
        self.spare_due = time.monotonic() + SPARE_DELAY
        try:
            socket.send_fds(spare.channel, [json.dumps(request).encode()], fds)
        except OSError:
            self.bury(spare)
            return None
        finally:
            spare.channel.close()
        self.adopt(spare.pidfd, spare.pid, request)
        return spare.pid

    def fork(self, request: dict[str, Any], fds: list[int]) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self.become_instance(request, fds)
        pidfd = os.pidfd_open(pid)
        self.adopt(pidfd, pid, request)
        self.selector.register(pidfd, selectors.EVENT_READ)
        return pid

    def adopt(self, pidfd: int, pid: int, request: dict[str, Any]) -> None:
        """Remember an instance; its TMPDIR is wiped with it when it lies in the zygote's own
        (inside a sandbox: /tmp/<instance> on the zygote's tmpfs, which only the zygote can reach)."""
        self.children[pidfd] = pid
        tmpdir = str(request.get("env", {}).get("TMPDIR", ""))
        own = os.environ.get("TMPDIR", "")
        if tmpdir and own and os.path.dirname(os.path.normpath(tmpdir)) == os.path.normpath(own):
            self.tmpdirs[pid] = tmpdir

    def fork_spare(self) -> None:
        self.spare_due = None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            ours.close()
            self.become_spare(theirs)
        theirs.close()
        pidfd = os.pidfd_open(pid)
        self.selector.register(pidfd, selectors.EVENT_READ)
        self.spare = Spare(ours, pid, pidfd)
        self.send({"op": "spare", "pid": pid})  # the daemon puts it in a cgroup now, off a request's path

    def reap(self, pidfd: int) -> None:
        pid = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # what the instance left in its group; its pid is not free yet
        _, status = os.waitpid(pid, 0)
        os.close(pidfd)
        tmpdir = self.tmpdirs.pop(pid, None)
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        self.send({"op": "exited", "pid": pid, "status": status})

    def reap_spare(self) -> None:
        """The spare died before it was needed: bury it, and try again a little later."""
        spare, self.spare = self.spare, None
        if spare is not None:
            spare.channel.close()
            self.bury(spare)
        self.spare_due = time.monotonic() + SPARE_RETRY

    def drop_spare(self) -> None:
        spare, self.spare = self.spare, None
        if spare is not None:
            spare.channel.close()
            with contextlib.suppress(ProcessLookupError):
                os.kill(spare.pid, signal.SIGKILL)
            self.bury(spare)

    def bury(self, spare: Spare) -> None:
        """A spare that will never serve: kill and reap it, and tell the daemon (its cgroup goes)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(spare.pid, signal.SIGKILL)
        self.selector.unregister(spare.pidfd)
        os.waitpid(spare.pid, 0)
        os.close(spare.pidfd)
        with contextlib.suppress(OSError):  # the daemon may be gone already
            self.send({"op": "spare_gone", "pid": spare.pid})

    # -- in the children -----------------------------------------------------------------------------------------------

    def detach(self) -> None:
        """A session and process group of its own, and none of the zygote's descriptors."""
        os.setsid()
        self.selector.close()
        self.control.close()
        for pidfd in self.children:
            os.close(pidfd)
        if self.spare is not None:
            self.spare.channel.close()
            os.close(self.spare.pidfd)

    def specialize(self, request: dict[str, Any], fds: list[int]) -> socket.socket:
        """From a copy of the zygote to one instance: its output, its environment, its socket.
        A third descriptor is the gate: wait for the daemon to put us in our cgroup (one byte);
        EOF means never, and the instance must not run at all."""
        listen_fd, output_fd = fds[0], fds[1]
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        if len(fds) > 2:
            opened = os.read(fds[2], 1)
            os.close(fds[2])
            if not opened:
                raise SystemExit(1)
        os.environ.update(request.get("env", {}))
        tmpdir = os.environ.get("TMPDIR")
        if tmpdir:
            with contextlib.suppress(OSError):
                os.makedirs(tmpdir, mode=0o700, exist_ok=True)
        tempfile.tempdir = None  # TMPDIR is the instance's own now
        random.seed()
        sock = socket.socket(fileno=listen_fd)
        sock.set_inheritable(False)
        return sock

    def become_instance(self, request: dict[str, Any], fds: list[int]) -> None:
        """A child forked on demand (no spare was ready). Never returns."""
        code = 1
        try:
            self.detach()
            sock = self.specialize(request, fds)
            code = serve(make_server(self.config, None), sock, _new_loop)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - a forked child must never return into the zygote's loop
            traceback.print_exc()
        finally:
            _leave(code)

    def become_spare(self, channel: socket.socket) -> None:
        """The spare: get ready, wait to be told which instance to be, then serve. Never returns."""
        code = 1
        try:
            self.detach()
            loop = _new_loop()
            asyncio.set_event_loop(loop)
            with contextlib.suppress(Exception):
                loop.run_until_complete(_warm_asgi(self.config.app))
            server = make_server(self.config, None)
            data, fds, _, _ = socket.recv_fds(channel, LIMIT_MESSAGE, 3)
            channel.close()
            if not data or len(fds) not in (2, 3):
                code = 0  # the zygote is gone: so is its spare
                return
            sock = self.specialize(json.loads(data), fds)
            code = serve(server, sock, lambda: loop)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - a forked child must never return into the zygote's loop
            traceback.print_exc()
        finally:
            _leave(code)


def _leave(code: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def load(entrypoint: str) -> tuple[object, Kind]:
    """The app's object and its kind, or exit 3 with the app's own traceback in the log."""
    try:
        target = load_target(entrypoint)
        return target, classify(target)
    except Exception as exc:
        traceback.print_exc()
        say(f"could not load {entrypoint}: {type(exc).__name__}: {exc}")
        raise SystemExit(EXIT_STARTUP_FAILED) from exc


def settle_threads(before: Collection[threading.Thread], within: float) -> list[threading.Thread]:
    """Wait up to `within` seconds for the threads started since `before` to end, and return
    every thread but the main one still running.

    A sync endpoint of a FastAPI/Starlette app runs in an AnyIO worker thread; the warm-up's
    loop ending tells it to stop, but it exits a few milliseconds later. Counting threads in
    that window would refuse a perfectly forkable app at random. Threads that were running
    before the warm-up (started at import) are not waited for: they are refused at once."""
    deadline = time.monotonic() + within
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread in before:
            continue
        with contextlib.suppress(RuntimeError):  # a foreign (C-level) thread cannot be joined: it counts
            thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threading.enumerate() if t is not threading.main_thread()]


def run_zygote(entrypoint: str, control_fd: int) -> int:
    control = socket.socket(fileno=control_fd)
    control.set_inheritable(False)
    started = time.monotonic()
    target, kind = load(entrypoint)
    before = set(threading.enumerate())
    warm(target, kind)
    config = make_config(as_asgi(target, kind), kind)
    with contextlib.suppress(ImportError):
        importlib.import_module("uvloop")
    running = settle_threads(before, TIMEOUT_WARM_THREADS)
    if running:
        names = ", ".join(t.name for t in running)
        say(f"the app runs threads after import and warm-up ({names}); forking it is unsafe: set preload = false")
        _leave(EXIT_CANNOT_PRELOAD)  # not a normal exit: that would wait for the app's non-daemon threads
    gc.collect()
    gc.freeze()  # the imported heap stays shared with every forked instance
    server = ForkServer(control, config)
    server.send({"op": "ready", "pid": os.getpid(), "kind": kind.value, "seconds": time.monotonic() - started})
    try:
        return server.run()
    except (BrokenPipeError, ConnectionResetError):
        return 0


def run_serve(entrypoint: str, fd: int, notify_fd: int | None) -> int:
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)
    if notify_fd is not None:
        os.set_inheritable(notify_fd, False)
    target, kind = load(entrypoint)
    return serve(make_server(make_config(as_asgi(target, kind), kind), notify_fd), sock, _new_loop)


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="roost-runner")
    modes = parser.add_subparsers(dest="mode", required=True)
    serve_mode = modes.add_parser("serve")
    serve_mode.add_argument("--app", required=True)
    serve_mode.add_argument("--fd", type=int, required=True)
    serve_mode.add_argument("--notify-fd", type=int)
    zygote_mode = modes.add_parser("zygote")
    zygote_mode.add_argument("--app", required=True)
    zygote_mode.add_argument("--control-fd", type=int, required=True)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [os.getcwd(), *(p for p in sys.path if os.path.abspath(p or os.curdir) != here)]
    args = _arguments(argv)
    try:
        if args.mode == "zygote":
            return run_zygote(args.app, args.control_fd)
        return run_serve(args.app, args.fd, args.notify_fd)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
