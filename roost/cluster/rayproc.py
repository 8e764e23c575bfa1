"""One `ray start --block` child, and its keeping: spawned in a session of its own with an explicit
environment, ready once Ray says so, restarted with back-off when it dies, and stopped with
TERM, a grace, then KILL of its whole process group, so that no Ray process outlives it.

`ray start --block` stays in the foreground as the parent of Ray's processes (GCS, raylet,
agents); on SIGTERM it drains and stops them, and when one of them dies it stops the others and
exits 1. Ray's processes share its process group, which is how a KILL reaches every one.
Never imports Ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from roost.cluster.cluster_settings import RayPorts
from roost.errors import Unavailable
from roost.listeners import bind_tcp

log = logging.getLogger("roost.cluster")
READY_LINE = "Ray runtime started."
TIMEOUT_START = 90.0  # a head takes 5-8 s on an idle machine; far more under a busy CI
GRACE_STOP = 20.0  # Ray drains for up to 30 s, but with nothing of Roost's running it takes ~1 s
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
POLL = 0.1
# Run before `ray start` (as `python -c`, then exec): the kernel sends it SIGTERM when its parent
# (the daemon, `roost node join`) dies, even by SIGKILL, so Ray stops instead of outliving Roost.
# argv: [-c, parent pid, program, args...]; a parent already gone means exit at once.
PARENT_DEATH_EXEC = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM); "  # PR_SET_PDEATHSIG
    "os.getppid() == int(sys.argv[1]) or sys.exit(1); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)
PROCESS_DIED = re.compile(r"-- (\w+) \[exit code=(-?\d+)\]")  # `ray start --block`'s report of a dead process


@dataclass(frozen=True, slots=True)
class RayCommand:
    """What to run: `what` names it for people ("the Ray head"); `stale` are files a previous
    run left that must not outlive it (removed before each start)."""

    what: str
    argv: tuple[str, ...]
    env: dict[str, str]
    log_path: Path
    stale: tuple[Path, ...] = ()
    private: tuple[Path, ...] = ()  # folders made owner-only (0700) before each start


def check_free(ports: RayPorts) -> None:
    """Raise PortInUse naming --cluster-ports when anything listens on a port of Ray's block but
    the GCS's (the head checks that one on its address): Ray binds them on every address, and a
    taken one would stop a raylet or a worker later, with Ray's words only in its logs."""
    for port in ports.others():
        bind_tcp("0.0.0.0", port, "cluster's Ray", "--cluster-ports").close()  # noqa: S104 - a probe, closed at once


def make_private(path: Path) -> None:
    """`path` as a folder only its owner may enter, whatever mode it had: Ray makes its session
    folders world-writable (0777) and the token lies beside them, so the cluster's folder must
    be closed to every other uid (the apps') even where the home lets them pass (o+x)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def describe_death(match: re.Match[str]) -> str:
    """'gcs_server [exit code=-9]' -> 'gcs_server was killed by SIGKILL'."""
    name, code = match.group(1), int(match.group(2))
    if code < 0 and -code in signal.valid_signals():
        return f"{name} was killed by {signal.Signals(-code).name}"
    return f"{name} exited with status {code}"


def _killpg(pgid: int, sig: int) -> bool:
    """Signal a process group; False when it has no process left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


class RayProcess:
    """One run of `ray start --block`; its output goes to `command.log_path`."""

    def __init__(self, command: RayCommand) -> None:
        self.command = command
        self._proc: asyncio.subprocess.Process | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self, within: float = TIMEOUT_START) -> None:
        """Spawn and wait until Ray's processes are up. Raises Unavailable (and leaves nothing
        running) when it exits first or is not ready `within` seconds."""
        self.command.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = await asyncio.to_thread(self._prepare)
        with self.command.log_path.open("ab") as output:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                PARENT_DEATH_EXEC,
                str(os.getpid()),
                *self.command.argv,
                env=self.command.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + within
        while READY_LINE not in await asyncio.to_thread(self.output):
            if self._proc.returncode is not None:
                await self.stop()  # what it started before it ended
                raise self._failed(f"stopped while starting ({self.describe_exit()})")
            if time.monotonic() > deadline:
                await self.stop()
                raise self._failed(f"was not ready within {within:.0f} s")
            await asyncio.sleep(POLL)

    def _failed(self, what: str) -> Unavailable:
        return Unavailable(
            f"{self.command.what} {what}: {self.last_line()}",
            hint=f"Ray's own words are in {self.command.log_path} and the session logs beside it",
        )

    async def wait(self) -> int:
        assert self._proc is not None  # noqa: S101 - started before
        return await self._proc.wait()

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def describe_exit(self) -> str:
        code = self._proc.returncode if self._proc is not None else None
        if code is None:
            return "running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}"

    async def stop(self, grace: float = GRACE_STOP) -> None:
        """TERM to `ray start` (it drains and stops Ray's processes), then KILL whatever of its
        process group is left after `grace`; when it had already ended by itself, KILL what it
        left at once. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is not None:
            grace = 0.0
        else:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), grace)
        deadline = time.monotonic() + grace
        # no event says when a process group is empty: poll it
        while _killpg(proc.pid, 0) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(POLL)  # its children stop after it
        while _killpg(proc.pid, signal.SIGKILL):  # noqa: ASYNC110
            await asyncio.sleep(POLL)
        await proc.wait()

    def _prepare(self) -> int:
        """Close the private folders, remove the previous run's stale files; the log's size (where
        this run's output starts)."""
        for folder in self.command.private:
            make_private(folder)
        for path in self.command.stale:
            path.unlink(missing_ok=True)
        return self._log_size()

    def _log_size(self) -> int:
        try:
            return self.command.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def output(self) -> str:
        """What this run has written so far."""
        with self.command.log_path.open("rb") as file:
            file.seek(self._log_offset)
            return file.read().decode(errors="replace")

    def last_line(self) -> str:
        """The one line that says why Ray ended: which of its processes died, else its last error."""
        lines = [line.strip() for line in self.output().splitlines() if line.strip()]
        died = [describe_death(m) for line in lines if (m := PROCESS_DIED.search(line))]
        if died:
            return ", ".join(died)
        errors = [line for line in lines if "Error" in line or "error" in line]
        return (errors or lines or ["(no output)"])[-1]


class RayKeeper:
    """Keeps `ray start --block` running: the first start is awaited (its failure raised); after
    that a death is reported through `report` and followed by a restart with back-off."""

    def __init__(
        self,
        command: RayCommand,
        report: Callable[[str], None],
        grace: float = GRACE_STOP,
        backoff_max: float = BACKOFF_MAX,
        backoff_first: float = BACKOFF_FIRST,
    ) -> None:
        self.command = command
        self.report = report
        self.grace = grace
        self.backoff_max = backoff_max
        self.backoff_first = backoff_first
        self.process = RayProcess(command)
        self.restarts = 0
        self.last_exit = ""
        self._stopping = False

    async def start(self) -> None:
        await self.process.start()

    async def keep(self) -> None:
        """Run until `stop`: wait for an exit, report it, start again after a back-off."""
        backoff = self.backoff_first
        while not self.is_stopping():
            if self.process.is_running():
                await self.process.wait()
                if self.is_stopping():
                    return
                await self.process.stop()  # whatever of its group is left
                self.last_exit = f"{self.process.describe_exit()}: {self.process.last_line()}"
                self.report(f"{self.command.what} stopped ({self.last_exit}); starting it again in {backoff:.0f} s")
            await asyncio.sleep(backoff)
            if self.is_stopping():
                return
            backoff = await self._restart(backoff)

    async def _restart(self, backoff: float) -> float:
        """One more start; the next back-off (reset once a start succeeded)."""
        self.process = RayProcess(self.command)
        try:
            await self.process.start()
        except Unavailable as exc:
            backoff = max(min(backoff * 2, self.backoff_max), self.backoff_first)
            self.report(f"{exc.message}; trying again in {backoff:.0f} s")
            return backoff
        self.restarts += 1
        self.report(f"{self.command.what} is running again (restart {self.restarts})")
        return self.backoff_first

    def is_stopping(self) -> bool:
        return self._stopping

    async def stop(self) -> None:
        self._stopping = True
        await self.process.stop(self.grace)
