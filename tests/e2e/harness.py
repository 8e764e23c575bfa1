"""A real `roost serve` on loopback for end-to-end tests.

Starts the daemon in its own process group on port 0, waits for its
"roost is ready" line (with a deadline), and kills the whole group on exit.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
REPO = Path(__file__).resolve().parents[2]


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    env["ROOST_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    return env


@dataclass
class Daemon:
    home: Path
    proc: subprocess.Popen[str]
    api_url: str = ""
    edge_url: str = ""
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)
    stderr_lines: list[str] = field(default_factory=list)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError(f"roost serve exited early:\n{self.output()}")
            self.lines.append(line)
            if match := re.search(r"admin API\s+(http://\S+)", line):
                self.api_url = match.group(1)
            if match := re.search(r"edge\s+(http://\S+)", line):
                self.edge_url = match.group(1)
            if "roost is ready" in line:
                return
        raise TimeoutError(f"roost serve was not ready within {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return "".join(self.lines) + "".join(self.stderr_lines)

    @property
    def edge_port(self) -> int:
        return int(self.edge_url.rsplit(":", 1)[1])

    def cli(
        self, *args: str, url: bool = True, stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run `roost ARGS` against this daemon (over TCP with url=True, else its Unix socket)."""
        prefix = ["--url", self.api_url] if url else []
        return run_cli(self.home, *prefix, *args, stdin=stdin, timeout=timeout)

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        code = self.proc.wait(timeout=timeout)
        self._drain()
        return code

    def _drain(self) -> None:
        while True:
            try:
                line = self._queue.get(timeout=2)
            except queue.Empty:
                return
            if line is None:
                return
            self.lines.append(line)

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def run_cli(home: Path, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roost", *args],
        env=base_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        cwd=str(home.parent),
    )


def _pump(stream: object, sink: queue.Queue[str | None] | list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        if isinstance(sink, list):
            sink.append(line)
        else:
            sink.put(line)
    if not isinstance(sink, list):
        sink.put(None)


def spawn(home: Path, *extra: str) -> Daemon:
    """Start `roost serve` (not waiting for readiness)."""
    args = [
        sys.executable,
        "-m",
        "roost",
        "serve",
        "--home",
        str(home),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-port",
        "0",
        *extra,
    ]
    proc = subprocess.Popen(
        args,
        env=base_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=str(REPO),
    )
    daemon = Daemon(home=home, proc=proc)
    threading.Thread(target=_pump, args=(proc.stdout, daemon._queue), daemon=True).start()
    threading.Thread(target=_pump, args=(proc.stderr, daemon.stderr_lines), daemon=True).start()
    return daemon


@contextlib.contextmanager
def running(home: Path, *extra: str) -> Iterator[Daemon]:
    """A ready daemon, killed with its whole process group afterwards."""
    daemon = spawn(home, *extra)
    try:
        daemon.wait_ready()
        yield daemon
    finally:
        daemon.kill_group()
