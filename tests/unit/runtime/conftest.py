"""Fixtures for the runtime's tests: one real virtual environment per session (uv, from PyPI),
tiny apps written here, and a LocalRuntime per test that is closed, and checked to have left
no process, whatever the test did."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil
import pytest
from uv import find_uv_bin

from roost.applog import LogBook
from roost.model import AppConfig, AppName, DeploymentId, InstanceState, Mode, ScaleConfig, new_deployment_id
from roost.runtime import RUNNER_REQUIREMENTS, DeploymentSpec, InstanceInfo, LocalRuntime, Slot
from roost.runtime.sandbox import SandboxSettings

TEST_PACKAGES = ("fastapi>=0.110", "flask>=3.0")
DEADLINE = 30.0

APPS: dict[str, dict[str, str]] = {
    "fastapi": {
        "main.py": """
            import asyncio, os, sys
            from contextlib import asynccontextmanager
            from fastapi import FastAPI, Request

            @asynccontextmanager
            async def lifespan(app):
                print("lifespan startup", flush=True)
                app.state.started = True
                yield
                print("lifespan shutdown", flush=True)

            app = FastAPI(lifespan=lifespan)

            @app.get("/")
            async def index():
                return {"hello": "fastapi", "instance": os.environ.get("ROOST_INSTANCE")}

            @app.get("/env")
            async def env():
                return dict(os.environ)

            @app.get("/pid")
            async def pid():
                return {"pid": os.getpid(), "pgid": os.getpgid(0)}

            @app.get("/slow")
            async def slow(ms: int = 500):
                await asyncio.sleep(ms / 1000)
                return {"slept_ms": ms}

            @app.get("/where")
            async def where(request: Request):
                return {"path": request.url.path, "root_path": request.scope.get("root_path", ""),
                        "started": getattr(request.app.state, "started", False)}

            @app.get("/say")
            async def say(line: str):
                print(line, flush=True)
                return {"said": line}
        """,
    },
    "flask": {
        "app.py": """
            import os
            from flask import Flask, request, jsonify
            app = Flask(__name__)

            @app.get("/")
            def index():
                return "hello from flask"

            @app.get("/json")
            def as_json():
                return jsonify(path=request.path, script_root=request.script_root, greeting=os.environ.get("GREETING"))
        """,
    },
    "handler": {
        "handler.py": """
            import asyncio

            def handler(request):
                if request.path == "/text":
                    return "hello " + request.query.get("name", "world")
                if request.path == "/bytes":
                    return b"\\x00\\x01"
                if request.path == "/json":
                    header = request.headers.get("x-test")
                    return {"method": request.method, "header": header, "root": request.root_path}
                if request.path == "/tuple":
                    return ("teapot", 418, {"X-Kind": "teapot"})
                if request.path == "/echo":
                    return (request.json(), 201)
                if request.path == "/none":
                    return None
                if request.path == "/boom":
                    raise ValueError("handler failed on purpose")
                return "index"

            async def async_handler(request):
                await asyncio.sleep(0)
                return {"async": True, "path": request.path}
        """,
    },
    "rawasgi": {
        "app.py": """
            async def app(scope, receive, send):
                if scope["type"] == "lifespan":
                    while True:
                        message = await receive()
                        if message["type"] == "lifespan.startup":
                            print("raw startup", flush=True)
                            await send({"type": "lifespan.startup.complete"})
                        else:
                            print("raw shutdown", flush=True)
                            await send({"type": "lifespan.shutdown.complete"})
                            return
                body = scope["path"].encode()
                headers = [(b"content-type", b"text/plain")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
        """,
    },
    "command": {
        "server.py": """
            import os, sys
            from http.server import BaseHTTPRequestHandler, HTTPServer

            class Hello(BaseHTTPRequestHandler):
                def do_GET(self):
                    body = f"command on {os.environ['PORT']}".encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *args):
                    pass

            print("command app listening", flush=True)
            HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hello).serve_forever()
        """,
    },
    "whoami": {
        "server.py": """
            import json, os, signal, sys
            from http.server import BaseHTTPRequestHandler, HTTPServer

            def stop(signum, frame):
                print(f"whoami {os.getpid()} got SIGTERM", flush=True)
                sys.exit(0)

            signal.signal(signal.SIGTERM, stop)

            class Who(BaseHTTPRequestHandler):
                def do_GET(self):
                    me = {"argv": sys.argv, "pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0)}
                    body = json.dumps(me).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *args):
                    pass

            HTTPServer(("127.0.0.1", int(sys.argv[1])), Who).serve_forever()
        """,
    },
    "crash": {
        "main.py": """
            import sys
            print("about to fail", flush=True)
            raise RuntimeError("boom at import")
        """,
    },
    "segv": {
        "main.py": """
            import os, signal
            print("about to crash hard", flush=True)
            os.kill(os.getpid(), signal.SIGSEGV)
        """,
    },
    "never": {
        "server.py": """
            import time
            print("not listening, on purpose", flush=True)
            time.sleep(120)
        """,
    },
    "syncfastapi": {
        "main.py": """
            import os, threading, time
            from fastapi import FastAPI

            app = FastAPI()

            @app.get("/")
            def index():  # a plain def: FastAPI runs it in an AnyIO worker thread
                linger = float(os.environ.get("LINGER", "0"))
                if linger and not any(t.name == "lingerer" for t in threading.enumerate()):
                    threading.Thread(target=time.sleep, args=(linger,), name="lingerer").start()
                return {"hello": "sync"}
        """,
    },
    "stubborn": {
        "server.py": """
            import os, signal, subprocess, sys
            from http.server import BaseHTTPRequestHandler, HTTPServer

            def ignore(signum, frame):
                print("got SIGTERM, ignoring it", flush=True)

            signal.signal(signal.SIGTERM, ignore)
            code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
            code += "time.sleep(120)"
            grandchild = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
            grandchild.stdout.readline()  # it ignores SIGTERM from here on
            print(f"grandchild {grandchild.pid}", flush=True)

            class Hello(BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200)
                    self.send_header("Content-Length", "8")
                    self.end_headers()
                    self.wfile.write(b"stubborn")

                def log_message(self, *args):
                    pass

            HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hello).serve_forever()
        """,
    },
    "threads": {
        "main.py": """
            import threading, time
            threading.Thread(target=time.sleep, args=(120,), daemon=True, name="importer").start()

            async def app(scope, receive, send):
                if scope["type"] != "http":
                    return
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"threads"})
        """,
    },
}


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployment-like virtual environment with the runner's requirements and the test apps' packages."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    uv = find_uv_bin()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # the network settings uv needs
    subprocess.run([uv, "venv", "-q", "--python", _base_python(), str(root)], check=True, env=env, timeout=120)
    install = [uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(root / "bin" / "python")]
    result = subprocess.run(
        [*install, *RUNNER_REQUIREMENTS, *TEST_PACKAGES], env=env, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        pytest.fail(f"could not build the test venv with uv: {result.stderr.strip()[-500:]}")
    return root


def _base_python() -> str:
    import sys

    return sys.executable


@pytest.fixture(scope="session")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("apps")
    for name, files in APPS.items():
        (root / name).mkdir()
        for filename, source in files.items():
            (root / name / filename).write_text(textwrap.dedent(source).lstrip())
    return root


@dataclass
class Recorder:
    """The runtime's listener and event sink in one: remembers everything, wakes waiters."""

    events: list[tuple[str, str, Mapping[str, object]]] = field(default_factory=list)
    changes: list[InstanceInfo] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    pids: set[int] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, app: AppName, kind: str, message: str, data: Mapping[str, object]) -> None:
        self.events.append((kind, message, data))
        pid = data.get("pid")
        if isinstance(pid, int):
            self.pids.add(pid)
        self.wake.set()

    def instance_changed(self, info: InstanceInfo) -> None:
        self.changes.append(info)
        if info.pid is not None:
            self.pids.add(info.pid)
        self.wake.set()

    def capacity_changed(self, deployment: DeploymentId) -> None:
        self.wake.set()

    def start_failed(self, deployment: DeploymentId, reason: str, retry_after: int | None = None) -> None:
        self.failures.append(reason)
        self.wake.set()

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.events]

    def messages(self, kind: str) -> list[str]:
        return [message for k, message, _ in self.events if k == kind]

    async def until(self, predicate: object, within: float = DEADLINE) -> None:
        """Wait until `predicate()` holds, woken by every event; fails the test at the deadline."""
        assert callable(predicate)
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting; events so far: {self.events[-10:]}")
            self.wake.clear()
            try:
                async with asyncio.timeout(min(remaining, 0.25)):
                    await self.wake.wait()
            except TimeoutError:
                pass


@dataclass
class Harness:
    runtime: LocalRuntime
    recorder: Recorder
    home: Path
    logs: LogBook
    venv: Path
    apps: Path

    def spec(
        self, app: str, *, entrypoint: str | None = None, command: str | None = None, **config: object
    ) -> DeploymentSpec:
        scale = config.pop("scale", ScaleConfig())
        env = config.pop("env", {})
        assert isinstance(scale, ScaleConfig) and isinstance(env, dict)
        app_config = AppConfig(entrypoint=entrypoint, command=command, scale=scale, **config)  # type: ignore[arg-type]
        return DeploymentSpec(
            app=AppName(app.replace("_", "-")),
            deployment=new_deployment_id(),
            code_dir=self.apps / app,
            venv_dir=self.venv,
            config=app_config,
            env=env,
        )

    def function(self, app: str, **config: object) -> DeploymentSpec:
        return self.spec(app, mode=Mode.FUNCTION, **config)

    def service(self, app: str, **config: object) -> DeploymentSpec:
        return self.spec(app, mode=Mode.SERVICE, **config)

    async def acquire(self, deployment: DeploymentId, within: float = DEADLINE) -> Slot:
        """What the edge's activator does: take a slot, or ask for capacity and wait for one."""
        deadline = time.monotonic() + within
        failures = len(self.recorder.failures)
        while True:
            slot = self.runtime.try_acquire(deployment)
            if slot is not None:
                return slot
            if len(self.recorder.failures) > failures:
                raise AssertionError(f"start failed: {self.recorder.failures[-1]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no slot within {within}s; events: {self.recorder.events[-10:]}")
            self.runtime.request_capacity(deployment, 1)
            self.recorder.wake.clear()
            try:
                async with asyncio.timeout(0.25):
                    await self.recorder.wake.wait()
            except TimeoutError:
                pass

    def live(self, deployment: DeploymentId) -> list[InstanceInfo]:
        live = (InstanceState.STARTING, InstanceState.READY, InstanceState.DRAINING)
        return [i for i in self.runtime.instances(deployment) if i.state in live]

    def ready(self, deployment: DeploymentId) -> list[InstanceInfo]:
        return [i for i in self.runtime.instances(deployment) if i.state is InstanceState.READY]


@pytest.fixture
async def harness(request: pytest.FixtureRequest, tmp_path: Path, venv: Path, apps: Path) -> AsyncIterator[Harness]:
    """A LocalRuntime with short graces; closed afterwards, and no process of it may survive.
    Parametrize it indirectly with a SandboxSettings to run under other sandbox settings."""
    sandbox: SandboxSettings | None = getattr(request, "param", None)
    recorder = Recorder()
    logs = LogBook(tmp_path / "logs")
    runtime = LocalRuntime(
        tmp_path / "home",
        logs,
        recorder,
        grace_drain=5.0,
        grace_kill=2.0,
        backoff_first=0.2,
        backoff_max=1.0,
        backoff_reset=60.0,
        idle_check_interval=0.1,
        timeout_start=20.0,
        sandbox=sandbox,
    )
    runtime.subscribe(recorder)
    await runtime.start()
    harness = Harness(runtime, recorder, tmp_path / "home", logs, venv, apps)
    try:
        yield harness
    finally:
        try:
            await asyncio.wait_for(runtime.close(), 30)
        finally:
            logs.close()
            survivors = kill_survivors(recorder.pids)
        assert not survivors, f"processes outlived close(): {survivors}"


def kill_survivors(pids: set[int]) -> list[int]:
    """Kill (and report) whatever of `pids` still runs: the safety net behind every test."""
    survivors = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.NoSuchProcess:
            continue
        survivors.append(pid)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            os.kill(pid, signal.SIGKILL)
    return survivors


async def http(
    host: str,
    port: int,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    method: str = "GET",
    body: bytes = b"",
    within: float = DEADLINE,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on a new connection: (status, headers, body)."""
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close", f"Content-Length: {len(body)}"]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            raw = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    head, _, content = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    if parsed.get("transfer-encoding") == "chunked":
        content = _dechunk(content)
    return int(status_line.split()[1]), parsed, content


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


async def get(slot: Slot, path: str = "/", **options: object) -> tuple[int, dict[str, str], bytes]:
    try:
        return await http(slot.host, slot.port, path, **options)  # type: ignore[arg-type]
    finally:
        slot.release()


def without_preload(spec: DeploymentSpec) -> DeploymentSpec:
    return replace(spec, config=replace(spec.config, preload=False))
