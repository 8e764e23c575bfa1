"""Shared by the benchmarks (not a benchmark itself): a venv for the FastAPI example, built with
uv in a temporary directory, a runtime that records events, and small statistics."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from uv import find_uv_bin

from roost.model import DeploymentId
from roost.runtime import RUNNER_REQUIREMENTS, InstanceInfo

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "fastapi-hello"


def build_venv(parent: Path) -> Path:
    """The FastAPI example's venv as the builder would make it (runner requirements, bytecode)."""
    venv = parent / "venv"
    uv = find_uv_bin()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    packages = [*RUNNER_REQUIREMENTS, *(EXAMPLE / "requirements.txt").read_text().split()]
    install = [uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(venv / "bin" / "python")]
    subprocess.run([*install, *packages], check=True, env=env)
    return venv


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="roost-bench-")


class Recorder:
    """Listener and event sink: wakes whoever waits for capacity or an event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.wake = asyncio.Event()

    def __call__(self, app: str, kind: str, message: str, data: Mapping[str, object]) -> None:
        self.events.append((kind, message))
        self.wake.set()

    def instance_changed(self, info: InstanceInfo) -> None:
        self.wake.set()

    def capacity_changed(self, deployment: DeploymentId) -> None:
        self.wake.set()

    def start_failed(self, deployment: DeploymentId, reason: str, retry_after: int | None = None) -> None:
        raise SystemExit(f"start failed: {reason}")

    async def until(self, predicate: object, within: float = 60.0) -> None:
        assert callable(predicate)
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out; last events: {self.events[-5:]}")
            self.wake.clear()
            try:
                async with asyncio.timeout(0.05):
                    await self.wake.wait()
            except TimeoutError:
                pass


async def first_byte(host: str, port: int, path: str = "/") -> bytes:
    """Send GET and return the first byte of the answer (then read the rest and close)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        first = await reader.readexactly(1)
        await reader.read()
        return first
    finally:
        writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p10 = ordered[len(ordered) // 10]
    p90 = ordered[(len(ordered) * 9) // 10 - 1]
    return (
        f"median {statistics.median(samples) * 1000:7.1f} ms   p10 {p10 * 1000:7.1f} ms   "
        f"p90 {p90 * 1000:7.1f} ms   (n={len(samples)})"
    )


class Served:
    """A real `roost serve` on loopback for a benchmark: its home, edge port and CLI."""

    def __init__(self, home: Path, proc: subprocess.Popen[str], edge_port: int) -> None:
        self.home = home
        self.proc = proc
        self.edge_port = edge_port

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
        return {**env, "ROOST_HOME": str(self.home), "NO_COLOR": "1", "COLUMNS": "200"}

    def cli(self, *args: str, timeout: float = 600) -> str:
        """Run `roost ARGS` over the daemon's Unix socket; exit with its error if it fails."""
        result = subprocess.run(
            [sys.executable, "-m", "roost", *args], env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise SystemExit(f"roost {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout


def serve(home: Path, *flags: str) -> Served:
    """Start `roost serve` on free loopback ports and wait for its "roost is ready" line."""
    edge_port = free_port()
    args = [sys.executable, "-m", "roost", "serve", "--home", str(home), "--host", "127.0.0.1"]
    args += ["--port", str(edge_port), "--api-port", str(free_port()), *flags]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if "roost is ready" in line:
            drain_output(proc)
            return Served(home, proc, edge_port)
        if time.monotonic() > deadline:
            break
    stop(proc)
    raise SystemExit("roost serve did not become ready")


def drain_output(proc: subprocess.Popen[str]) -> None:
    """Keep reading the daemon's output so it never blocks on a full pipe."""

    def drain() -> None:
        assert proc.stdout is not None
        for _ in proc.stdout:
            pass

    threading.Thread(target=drain, daemon=True).start()


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM and wait (the daemon stops its instances), then SIGKILL the group if needed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
