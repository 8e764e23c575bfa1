"""A real `roost serve` on loopback for end-to-end tests.

Starts the daemon in its own process group on port 0, waits for its
"roost is ready" line (with a deadline), and kills the whole group on exit.
Under pytest-xdist, each worker's daemons get a uid range of their own (see `uid_range`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost.builder import home_id
from roost.runtime.sandbox import firewall
from roost.serve_settings import DEFAULT_UID_FIRST, DEFAULT_UID_LAST

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
REPO = Path(__file__).resolve().parents[2]
# One uv cache for every test daemon: each test's home is new, its wheels need not be. One per
# user: another user's (root's) cache is not writable, and sharing it would mix owners.
UV_CACHE = Path(tempfile.gettempdir()) / f"roost-tests-uv-cache-{os.getuid()}"
# pytest-xdist workers after the first: app uids from WORKER_UIDS_FIRST on, WORKER_UIDS each
# (above the ranges test modules name themselves, 300000-347999).
WORKER_UIDS_FIRST = 400_000
WORKER_UIDS = 10_000


def uid_range() -> tuple[int, int]:
    """The app uids of this test process's daemons: the default range, except on pytest-xdist's
    second and later workers (`gw1`, ...), which get one each. Two daemons sharing a range share
    a build gid (the first uid less one), and each one's nftables table would then also judge the
    other's apps and builds: a daemon's `--build-allow` refused by its neighbour's table, or a
    firewall test passed by the neighbour's rules instead of its own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw")) if worker.removeprefix("gw").isdigit() else 0
    if index == 0:
        return DEFAULT_UID_FIRST, DEFAULT_UID_LAST
    first = WORKER_UIDS_FIRST + (index - 1) * WORKER_UIDS
    return first, first + WORKER_UIDS - 1


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    env["ROOST_HOME"] = str(home)
    env["ROOST_UV_CACHE"] = str(UV_CACHE)
    env["XDG_CONFIG_HOME"] = str(home.parent / "config")
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
            if match := re.search(r"admin API\s+(https?://\S+)", line):
                self.api_url = match.group(1)
            if match := re.search(r"edge\s+(https?://\S+)", line):
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
        self, *args: str, url: bool = False, stdin: str | None = None, timeout: float = 60, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `roost ARGS` against this daemon: over its Unix socket, or over TCP with url=True;
        in `cwd` (default: beside the home, in no app's folder)."""
        prefix = ["--url", self.api_url] if url else []
        return run_cli(self.home, *prefix, *args, stdin=stdin, timeout=timeout, cwd=cwd)

    def api(self) -> httpx.Client:
        """An HTTP client on the daemon's Unix socket (no credentials needed there)."""
        transport = httpx.HTTPTransport(uds=str(self.home / "roost.sock"))
        return httpx.Client(transport=transport, base_url="http://roost", timeout=60)

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

    def stop(self) -> None:
        """SIGTERM and wait (the daemon stops its instances), then make sure nothing is left."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=STOP_TIMEOUT)
        self.kill_group()

    def kill_group(self) -> None:
        """SIGKILL the daemon's group and any instance it left (they run in groups of their own)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for pid in leftover_instances(self.home) + leftover_builds(self.home):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        remove_firewall(self.home)


def remove_firewall(home: Path) -> None:
    """Delete the nftables table of `home` that a daemon killed with SIGKILL leaves behind: each
    leftover table would cost every packet on this host a pass through its chains."""
    binary = firewall.nft_binary()
    if binary is None or os.geteuid() != 0:
        return
    with contextlib.suppress(firewall.FirewallUnavailable):
        firewall.apply(firewall.removal(firewall.table_name(home)), [binary])


def leftover_instances(home: Path) -> list[int]:
    """Processes of Roost instances or zygotes that belong to `home` (ROOST_INSTANCE in their
    environment and the home's path in their environment, command line or working directory)."""
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


def leftover_builds(home: Path) -> list[int]:
    """Live build subprocesses (uv, compileall and what they started) of `home`: its ROOST_BUILD
    mark in their environment."""
    found: list[int] = []
    mark = f"ROOST_BUILD={home_id(home)}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if mark in environ:
            found.append(int(entry.name))
    return found


def run_cli(
    home: Path, *args: str, stdin: str | None = None, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roost", *args],
        env=base_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        cwd=str(cwd or home.parent),
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
    return launch(args, home)


def launch(argv: list[str], home: Path, env: dict[str, str] | None = None) -> Daemon:
    """Run `argv` (a `roost serve` of `home`, perhaps wrapped) in its own session, its output pumped;
    with this worker's `uid_range` unless `argv` names one."""
    first, last = uid_range()
    if "serve" in argv and "--uid-range" not in argv and first != DEFAULT_UID_FIRST:
        argv = [*argv, "--uid-range", f"{first}-{last}"]
    proc = subprocess.Popen(
        argv,
        env=env or base_env(home),
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
        daemon.stop()


def module_daemon(name: str, *extra: str) -> Any:
    """A module-scoped `daemon` fixture: one `roost serve` (with `extra` flags) for a whole test
    module, in a home of its own. Use as `daemon = module_daemon("observe")`."""

    @pytest.fixture(scope="module")
    def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
        home = tmp_path_factory.mktemp(name) / "home"
        home.mkdir()
        with running(home, *extra) as started:
            yield started

    return daemon
