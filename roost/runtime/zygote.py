"""The daemon's side of a zygote: spawn it, ask it to fork instances, learn how they ended.

The zygote (runner.py in zygote mode) imported and warmed the app once; a fork
command hands it a listening socket and an output pipe over a SOCK_SEQPACKET
socketpair (SCM_RIGHTS) and gets back the child's pid. The zygote is the
parent of what it forks, so it reaps them and reports each wait status here.
This module never decides when to fork or evict: the supervisor does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from roost.runtime.environ import make_tmpdir, process_env
from roost.runtime.output import Output
from roost.runtime.process import ExitStatus, ForkedChild, SpawnedChild, terminate, wait_exit
from roost.runtime.protocol import DeploymentSpec
from roost.runtime.sandbox import Cgroup, Confinement
from roost.runtime.spawn import runner_argv, spawn

LIMIT_MESSAGE = 64 * 1024
TIMEOUT_FORK = 5.0


class ZygoteState(StrEnum):
    STARTING = "starting"  # importing and warming the app
    READY = "ready"  # waiting for fork commands
    STOPPING = "stopping"  # evicted, replaced or retired: told to exit
    GONE = "gone"  # exited and reaped


class ForkFailed(Exception):
    """The zygote could not fork (gone, not answering): start the instance fresh instead."""


class Zygote:
    """One zygote process of one deployment, and the instances it forked."""

    def __init__(self, spec: DeploymentSpec, tmpdir: Path, on_line: Callable[[str], None]) -> None:
        self.spec = spec
        self.tmpdir = tmpdir
        self.state = ZygoteState.STARTING
        self.pid: int | None = None
        self.kind = ""
        self.spawned_at = time.monotonic()
        self.ready_at: float | None = None
        self.last_fork = time.monotonic()
        self.status: ExitStatus | None = None
        self.output = Output(on_line)
        self.on_gone: Callable[[Zygote], None] | None = None
        self.on_spare: Callable[[int, bool], None] | None = None  # (pid, alive): a spare forked ahead, or gone
        self.spare_groups: dict[int, asyncio.Future[Cgroup | None]] = {}  # spare pid -> its cgroup, being made
        self.stopping = False  # we asked it to exit: its end is no death
        self.cgroup: Cgroup | None = None
        self._loop = asyncio.get_running_loop()
        self._control: socket.socket | None = None
        self._process: SpawnedChild | None = None
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._pending: dict[str, asyncio.Future[ForkedChild]] = {}
        self._children: dict[int, ForkedChild] = {}

    def is_ready(self) -> bool:
        return self.state is ZygoteState.READY

    def live_children(self) -> int:
        return sum(1 for child in self._children.values() if child.is_alive())

    async def spawn(self, confinement: Confinement | None = None, tmpdir: Path | None = None) -> None:
        """Start the zygote process (in `confinement`, seeing `tmpdir` as its TMPDIR); `wait_ready`
        tells when it can fork. Raises SpawnFailed."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        make_tmpdir(self.tmpdir)
        self.cgroup = confinement.cgroup if confinement is not None else None
        env = process_env(self.spec, "zygote", tmpdir or self.tmpdir, None)
        entrypoint = self.spec.config.entrypoint or ""
        argv = runner_argv(self.spec.venv_dir, "zygote", "--app", entrypoint, "--control-fd", str(theirs.fileno()))
        try:
            spawned = spawn(argv, self.spec.code_dir, env, (theirs.fileno(),), confinement)
        except BaseException:
            ours.close()
            self.state = ZygoteState.GONE
            self._ready.set_result(None)
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._control = ours
        self._process = spawned.child
        self.pid = spawned.child.pid
        self._loop.add_reader(ours.fileno(), self._on_readable)
        spawned.child.exited.add_done_callback(self._on_exit)
        await self.output.attach(spawned.output_fd)

    async def wait_ready(self, within: float) -> bool:
        """True once the zygote can fork; False if it died or `within` seconds passed first."""
        if self.state is ZygoteState.STARTING:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await asyncio.shield(self._ready)
        return self.state is ZygoteState.READY

    async def fork(
        self, instance: str, sock: socket.socket, output_fd: int, env: Mapping[str, str], gate_fd: int | None = None
    ) -> ForkedChild:
        """Fork an instance serving on `sock`, writing to `output_fd`; with `gate_fd`, the child
        serves only once a byte arrives there. Raises ForkFailed."""
        if self.state is not ZygoteState.READY or self._control is None:
            raise ForkFailed(f"the zygote is {self.state}")
        message = json.dumps({"op": "fork", "instance": instance, "env": dict(env)}).encode()
        fds = [sock.fileno(), output_fd, *([gate_fd] if gate_fd is not None else [])]
        try:
            socket.send_fds(self._control, [message], fds)
        except OSError as exc:
            raise ForkFailed(f"could not reach the zygote: {exc}") from exc
        self.last_fork = time.monotonic()
        waiter: asyncio.Future[ForkedChild] = self._loop.create_future()
        self._pending[instance] = waiter
        try:
            async with asyncio.timeout(TIMEOUT_FORK):
                return await waiter
        except TimeoutError as exc:
            raise ForkFailed(f"the zygote did not fork within {TIMEOUT_FORK:g}s") from exc
        finally:
            self._pending.pop(instance, None)

    def _on_readable(self) -> None:
        assert self._control is not None  # noqa: S101 - the reader is removed with the socket
        while True:
            try:
                data = self._control.recv(LIMIT_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close_control()
                return
            self._on_message(json.loads(data))

    def _on_message(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "ready":
            # starting -> ready: imported, warmed, frozen
            self.state = ZygoteState.READY
            self.kind = str(message.get("kind", ""))
            self.ready_at = self.last_fork = time.monotonic()
            if not self._ready.done():
                self._ready.set_result(None)
        elif op == "forked":
            self._forked(str(message["instance"]), int(message["pid"]))
        elif op in ("spare", "spare_gone") and self.on_spare is not None:
            self.on_spare(int(message["pid"]), op == "spare")
        elif op == "exited":
            child = self._children.pop(int(message["pid"]), None)
            if child is not None:
                child.report(ExitStatus.from_wait_status(int(message["status"])))
        elif op == "failed":
            waiter = self._pending.get(str(message.get("instance")))
            if waiter is not None and not waiter.done():
                waiter.set_exception(ForkFailed(str(message.get("error", "the zygote could not fork"))))

    def _forked(self, instance: str, pid: int) -> None:
        child = ForkedChild(pid, self._loop)
        self._children[pid] = child
        waiter = self._pending.get(instance)
        if waiter is None or waiter.done():
            child.signal(signal.SIGKILL)  # nobody waits for it any more (the fork timed out): it must not live
            return
        waiter.set_result(child)

    def _close_control(self) -> None:
        if self._control is not None:
            self._loop.remove_reader(self._control.fileno())
            self._control.close()
            self._control = None

    def _on_exit(self, exited: asyncio.Future[ExitStatus]) -> None:
        # any state -> gone: the zygote process was reaped
        self.status = exited.result() if not exited.cancelled() else ExitStatus.unknown("not watched")
        self.state = ZygoteState.GONE
        self._close_control()
        if not self._ready.done():
            self._ready.set_result(None)
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(ForkFailed(f"the zygote {self.status.describe()}"))
        for child in self._children.values():
            child.orphaned()
        self._children.clear()
        if self.on_gone is not None:
            self.on_gone(self)

    async def stop(self, grace: float) -> None:
        """Tell the zygote to exit (EOF on its control socket), then TERM and KILL if it lingers.
        The instances it forked live on in their own process groups."""
        self.stopping = True
        if self.state is not ZygoteState.GONE:
            self.state = ZygoteState.STOPPING
        self._close_control()
        if self._process is not None and await wait_exit(self._process, grace) is None:
            await terminate(self._process, grace)
        await self.output.finish()
        for child in list(self._children.values()):
            child.orphaned()
