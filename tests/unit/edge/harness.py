"""Real servers and clients on loopback for the edge tests.

- `LoopbackRuntime`: the one double. A `Runtime` whose instances are servers
  already listening on 127.0.0.1; it counts slots, respects concurrency,
  fires capacity_changed, and can start instances slowly or fail to.
- `uvicorn_app`: a tiny ASGI app served by uvicorn (h11, an independent
  parser of what the edge sends) on a port-0 socket.
- raw upstreams that misbehave on purpose (stall, die mid-answer, 101 echo).
- `RawClient`: bytes in, responses parsed by h11 out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import h11
import uvicorn

from roost.edge import AppRoute, Edge, EdgeSettings, RouteTable
from roost.model import AppName, DeploymentId, InstanceId, InstanceState
from roost.runtime.protocol import InstanceInfo, RuntimeListener, Slot, StartKind

DEADLINE = 10.0


# -- the runtime double -------------------------------------------------------------------------


@dataclass
class Plan:
    """How a deployment's instances come to be in the LoopbackRuntime."""

    addresses: list[tuple[str, int]]
    concurrency: int = 10
    maximum: int = 10
    start_delay: float = 0.0
    fail_start: str | None = None
    start_kind: StartKind = StartKind.FORK


@dataclass
class FakeInstance:
    id: InstanceId
    deployment: DeploymentId
    host: str
    port: int
    concurrency: int
    start_kind: StartKind
    state: InstanceState = InstanceState.READY
    in_flight: int = 0
    reason: str = ""

    def info(self) -> InstanceInfo:
        return InstanceInfo(
            id=self.id,
            app=AppName("app"),
            deployment=self.deployment,
            state=self.state,
            host=self.host,
            port=self.port,
            pid=None,
            started_at=0.0,
            start_kind=self.start_kind,
            in_flight=self.in_flight,
            reason=self.reason,
        )


@dataclass
class LoopbackRuntime:
    plans: dict[DeploymentId, Plan] = field(default_factory=dict)
    instances: dict[InstanceId, FakeInstance] = field(default_factory=dict)
    listeners: list[RuntimeListener] = field(default_factory=list)
    starts: Counter[DeploymentId] = field(default_factory=Counter)
    capacity_asks: list[tuple[DeploymentId, int]] = field(default_factory=list)
    regions_asked: list[str] = field(default_factory=list)  # the region of each capacity ask
    stopped: list[tuple[InstanceId, str]] = field(default_factory=list)
    acquired: int = 0
    released: int = 0
    _starting: Counter[DeploymentId] = field(default_factory=Counter)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def add(self, deployment: str, plan: Plan, ready: int = 1) -> DeploymentId:
        dep = DeploymentId(deployment)
        self.plans[dep] = plan
        for _ in range(ready):
            self._spawn(dep, StartKind.FRESH)
        return dep

    def _spawn(self, dep: DeploymentId, kind: StartKind) -> FakeInstance:
        plan = self.plans[dep]
        number = sum(1 for i in self.instances.values() if i.deployment == dep)
        host, port = plan.addresses[number % len(plan.addresses)]
        instance = FakeInstance(InstanceId(f"i{dep}{number}"), dep, host, port, plan.concurrency, kind)
        self.instances[instance.id] = instance
        return instance

    def ready(self, dep: DeploymentId) -> list[FakeInstance]:
        return [i for i in self.instances.values() if i.deployment == dep and i.state is InstanceState.READY]

    # Runtime protocol: what the edge uses

    def subscribe(self, listener: RuntimeListener) -> None:
        self.listeners.append(listener)

    def try_acquire(self, deployment: DeploymentId) -> Slot | None:
        free = [i for i in self.ready(deployment) if i.in_flight < i.concurrency]
        if not free:
            return None
        instance = min(free, key=lambda i: i.in_flight)
        instance.in_flight += 1
        self.acquired += 1
        return Slot(instance.id, deployment, instance.host, instance.port, instance.start_kind, self._release)

    def _release(self, slot: Slot) -> None:
        self.released += 1
        instance = self.instances[slot.instance]
        instance.in_flight -= 1
        if instance.state is InstanceState.READY:
            for listener in self.listeners:
                listener.capacity_changed(slot.deployment)

    def request_capacity(self, deployment: DeploymentId, slots: int, region: str = "") -> None:
        self.capacity_asks.append((deployment, slots))
        self.regions_asked.append(region)
        plan = self.plans.get(deployment)
        if plan is None:
            return
        ready = self.ready(deployment)
        covered = sum(i.concurrency - i.in_flight for i in ready) + self._starting[deployment] * plan.concurrency
        room = plan.maximum - len(ready) - self._starting[deployment]
        wanted = min(room, math.ceil(max(0, slots - covered) / plan.concurrency))
        for _ in range(wanted):
            self._starting[deployment] += 1
            self.starts[deployment] += 1
            task = asyncio.get_running_loop().create_task(self._start(deployment, plan))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _start(self, deployment: DeploymentId, plan: Plan) -> None:
        try:
            await asyncio.sleep(plan.start_delay)  # the simulated start itself
        finally:
            self._starting[deployment] -= 1
        if plan.fail_start is not None:
            for listener in self.listeners:
                listener.start_failed(deployment, plan.fail_start)
            return
        instance = self._spawn(deployment, plan.start_kind)
        for listener in self.listeners:
            listener.instance_changed(instance.info())
            listener.capacity_changed(deployment)

    async def stop_instance(self, instance: InstanceId, reason: str) -> None:
        self.stopped.append((instance, reason))
        found = self.instances[instance]
        found.state = InstanceState.STOPPED
        for listener in self.listeners:
            listener.instance_changed(found.info())

    def crash(self, instance: InstanceId, reason: str) -> None:
        """ready -> crashed, told as the real runtime tells it (the reason ends with the app's output)."""
        found = self.instances[instance]
        found.state, found.reason = InstanceState.CRASHED, reason
        for listener in self.listeners:
            listener.instance_changed(found.info())

    def instances_of(self, deployment: DeploymentId) -> list[FakeInstance]:
        return [i for i in self.instances.values() if i.deployment == deployment]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"LoopbackRuntime does not implement {name}: the edge must not need it")


def route(
    name: str,
    traffic: list[tuple[DeploymentId, int]],
    *,
    previews: tuple[DeploymentId, ...] = (),
    stopped: bool = False,
    timeout: float = 5.0,
    body: int = 10 * 1024 * 1024,
    private: frozenset[str] = frozenset(),
) -> AppRoute:
    deployments = frozenset(d for d, _ in traffic) | frozenset(previews)
    return AppRoute(name, tuple(traffic), deployments, stopped, timeout, body, True, private)


def table(*apps: AppRoute, domain: str = "localhost", hosts: dict[str, str] | None = None) -> RouteTable:
    return RouteTable(domain=domain, apps={AppName(a.name): a for a in apps}, hosts=hosts or {})


# -- servers --------------------------------------------------------------------------------------


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def refusing_address() -> tuple[socket.socket, tuple[str, int]]:
    """A loopback port that refuses connections: bound (so nobody else takes it), never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[:2]


async def _body(receive: Callable[[], Awaitable[dict[str, Any]]]) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body"):
            return


def make_app(name: str) -> Callable[..., Awaitable[None]]:
    """An ASGI app: / says hello, /echo streams the body back, /headers shows what arrived, and more."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        if path == "/echo":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"x-echo", b"1")]})
            async for chunk in _body(receive):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b"".join([chunk async for chunk in _body(receive)])
        status = int(query.get("status", "200"))
        headers = [(b"content-type", b"text/plain"), (b"x-instance", name.encode())]
        if path == "/headers":
            seen = {k.decode(): v.decode("latin-1") for k, v in scope["headers"]}
            data = {"headers": seen, "path": path, "raw_path": scope["raw_path"].decode(), "body": len(body)}
            text = json.dumps(data).encode()
        elif path == "/sleep":
            await asyncio.sleep(float(query["s"]))
            text = b"slept"
        elif path == "/hop":
            headers += [(b"connection", b"x-secret"), (b"x-secret", b"1"), (b"keep-alive", b"timeout=5")]
            headers += [(b"server", b"uvicorn-internal"), (b"x-request-id", b"from-app")]
            text = b"hop"
        else:
            text = f"hello from {name} {scope['method']} {path} {len(body)}".encode()
        headers.append((b"content-length", str(len(text)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": text})

    return app


class QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def uvicorn_app(name: str) -> AsyncIterator[tuple[str, int]]:
    sock = listening_socket()
    config = uvicorn.Config(
        make_app(name), http="h11", lifespan="off", log_config=None, access_log=False, timeout_keep_alive=5
    )
    server = QuietServer(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(DEADLINE):
            while not server.started:
                if task.done():
                    await task
                await asyncio.sleep(0.005)  # polling uvicorn's readiness flag, under a deadline
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        server.force_exit = True
        await task
        sock.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, int]]:
    """A raw asyncio server for upstreams that misbehave on purpose."""
    tasks: set[asyncio.Task[None]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[:2]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


# -- the edge ----------------------------------------------------------------------------------


@dataclass
class Running:
    edge: Edge
    runtime: LoopbackRuntime
    host: str
    port: int
    recycled: list[tuple[InstanceId, str]] = field(default_factory=list)

    def client(self, local: str = "127.0.0.1") -> RawClient:
        return RawClient(self.host, self.port, local)


@contextlib.asynccontextmanager
async def running_edge(
    runtime: LoopbackRuntime, routes: RouteTable, settings: EdgeSettings | None = None, seed: int = 7
) -> AsyncIterator[Running]:
    import random

    edge = Edge(runtime, settings or EdgeSettings(), rng=random.Random(seed))  # noqa: S311 - a seeded split
    sock = listening_socket("0.0.0.0")  # loopback clients from 127.0.0.2 and 127.0.0.3 too
    recycled: list[tuple[InstanceId, str]] = []
    edge.on_recycle = lambda instance, reason: recycled.append((instance, reason))
    edge.update_routes(routes)
    await edge.start(sock)
    try:
        yield Running(edge, runtime, "127.0.0.1", sock.getsockname()[1], recycled)
    finally:
        await edge.close(2.0)
        await runtime.close()
        sock.close()


# -- the client --------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    informational: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class RawClient:
    """A loopback TCP client: write any bytes, read responses with h11 as the judge."""

    def __init__(self, host: str, port: int, local: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.local = local
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._pending = b""

    async def __aenter__(self) -> RawClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, local_addr=(self.local, 0))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError):
                await self.writer.wait_closed()

    async def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, method: str, path: str, host: str, headers: dict[str, str] | None = None) -> Response:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        return await self.response(method)

    async def response(self, method: str = "GET") -> Response:
        """The next complete response on the connection (1xx collected on the way)."""
        assert self.reader is not None
        judge = h11.Connection(h11.CLIENT)
        judge.send(h11.Request(method=method, target="/", headers=[("Host", "judge")]))
        judge.send(h11.EndOfMessage())
        if self._pending:
            judge.receive_data(self._pending)
            self._pending = b""
        informational: list[int] = []
        status, headers, body = 0, {}, bytearray()
        async with asyncio.timeout(DEADLINE):
            while True:
                event = judge.next_event()
                if event is h11.NEED_DATA:
                    data = await self.reader.read(65536)
                    judge.receive_data(data)
                    continue
                if isinstance(event, h11.InformationalResponse):
                    informational.append(event.status_code)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("closed before a complete response")
        self._pending = bytes(judge.trailing_data[0])
        return Response(status, headers, bytes(body), informational)

    async def rest(self) -> bytes:
        """Everything the edge still sends until it closes the connection (within the deadline)."""
        assert self.reader is not None
        data, self._pending = self._pending, b""
        async with asyncio.timeout(DEADLINE):
            try:
                while more := await self.reader.read(65536):
                    data += more
            except ConnectionError:
                pass
        return data

    async def is_closed(self) -> bool:
        """True if the edge closed the connection (EOF or reset) within the deadline."""
        assert self.reader is not None
        try:
            async with asyncio.timeout(DEADLINE):
                data = self._pending or await self.reader.read(65536)
                while data:
                    data = await self.reader.read(65536)
        except ConnectionError:
            return True
        except TimeoutError:
            return False
        return True


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    """One request as a raw upstream sees it: head, lower-case headers, and a Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return head, headers, body


def answer(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def until(condition: Callable[[], bool], deadline: float = DEADLINE) -> None:
    """Poll `condition` until it holds; fail after `deadline` seconds."""
    async with asyncio.timeout(deadline):
        while not condition():
            await asyncio.sleep(0.005)
