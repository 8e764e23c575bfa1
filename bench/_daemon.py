"""A `roost serve` for the deploy benchmarks (not a benchmark itself): its own home and uv cache, its
output pumped in a thread, stopped with SIGTERM and its process group and leftover instances killed."""

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
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT_READY = 60.0
TIMEOUT_STOP = 30.0


class BenchError(Exception):
    """Something failed: the benchmark stops and says what."""


# -- the daemon ---------------------------------------------------------------------------------


@dataclass
class Daemon:
    """A `roost serve` in its own process group, its output pumped into `lines`."""

    root: Path
    home: Path
    proc: subprocess.Popen[str]
    edge_port: int = 0
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def env(self) -> dict[str, str]:
        """The CLI's environment: this daemon's home (its Unix socket), no saved credentials."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
        env.update(ROOST_HOME=str(self.home), XDG_CONFIG_HOME=str(self.root / "config"))
        env.update(NO_COLOR="1", COLUMNS="200", PYTHONUNBUFFERED="1")
        return env

    def wait_ready(self) -> None:
        """Read output until "roost is ready"; the edge's port comes from its printed URL."""
        deadline = time.monotonic() + TIMEOUT_READY
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise BenchError(f"roost serve exited early:\n{self.output()}")
            self.lines.append(line)
            if match := re.search(r"edge\s+https?://[^\s:]+:(\d+)", line):
                self.edge_port = int(match.group(1))
            if "roost is ready" in line:
                if not self.edge_port:
                    raise BenchError(f"roost serve printed no edge URL:\n{self.output()}")
                return
        raise BenchError(f"roost serve was not ready within {TIMEOUT_READY:.0f}s:\n{self.output()}")

    def output(self, last: int = 40) -> str:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return "".join(self.lines[-last:])

    def stop(self) -> None:
        """SIGTERM and wait (the daemon stops its instances), then SIGKILL the group and any leftover."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=TIMEOUT_STOP)
            except subprocess.TimeoutExpired:
                print(f"roost serve did not exit within {TIMEOUT_STOP:.0f}s of SIGTERM: killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for pid in leftover_instances(self.home):
            print(f"killing instance {pid} left behind by the daemon", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def start_daemon(root: Path, *flags: str) -> Daemon:
    """`roost serve FLAGS` on loopback, port 0 for the edge and the API, a fresh home and uv cache under `root`."""
    home, cache = root / "home", root / "uv-cache"
    args = [sys.executable, "-m", "roost", "serve", "--home", str(home), "--host", "127.0.0.1", "--port", "0"]
    args += ["--api-port", "0", "--uv-cache", str(cache), *flags]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    env.update(XDG_CONFIG_HOME=str(root / "config"), PYTHONUNBUFFERED="1", NO_COLOR="1")
    proc = subprocess.Popen(
        args,
        env=env,
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    daemon = Daemon(root=root, home=home, proc=proc)
    threading.Thread(target=_pump, args=(proc, daemon._queue), daemon=True).start()
    return daemon


def _pump(proc: subprocess.Popen[str], sink: queue.Queue[str | None]) -> None:
    """Keep reading the daemon's output so it never blocks on a full pipe."""
    assert proc.stdout is not None
    for line in proc.stdout:
        sink.put(line)
    sink.put(None)


def leftover_instances(home: Path) -> list[int]:
    """Instances or zygotes of `home` still alive: ROOST_INSTANCE and the home's path in their environment,
    command line or working directory."""
    found: list[int] = []
    marker = str(home).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if b"ROOST_INSTANCE=" not in environ:
                continue
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd").encode()
        except OSError:
            continue
        if marker in environ or marker in cmdline or cwd.startswith(marker):
            found.append(int(entry.name))
    return found
