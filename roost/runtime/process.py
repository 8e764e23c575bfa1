"""Handles on the processes the runtime owns: how they exited, and how to signal their group.

A `SpawnedChild` is the daemon's own child (a fresh instance, a command app, a
zygote, a probe): it is watched by pidfd and reaped with `waitpid(pid)`, never
`waitpid(-1)`. A `ForkedChild` is a zygote's child: the zygote reaps it and
reports its status; the daemon only watches its pidfd, to notice the exit
when the zygote is gone. Every child leads a process group of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a process ended, in words people can act on."""

    code: int | None = None
    signal: int | None = None
    note: str = ""  # why the status is unknown, when it is

    @classmethod
    def from_wait_status(cls, status: int) -> ExitStatus:
        code = os.waitstatus_to_exitcode(status)
        return cls(signal=-code) if code < 0 else cls(code=code)

    @classmethod
    def unknown(cls, note: str) -> ExitStatus:
        return cls(note=note)

    def unwrapped(self) -> ExitStatus:
        """bwrap's status as the app's: 137 is "killed by SIGKILL" (an app exiting 137 itself
        reads the same: the shell convention bwrap follows cannot tell them apart)."""
        if self.code is not None and 128 < self.code < 128 + signal.NSIG:
            with contextlib.suppress(ValueError):
                return ExitStatus(signal=signal.Signals(self.code - 128).value)
        return self

    def describe(self) -> str:
        """ "exited with status 3", "killed by SIGKILL", "exited (status unknown: ...)"."""
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by {name}"
        if self.code is not None:
            return f"exited with status {self.code}"
        return f"exited (status unknown: {self.note})" if self.note else "exited"


def signal_group(pid: int, sig: int) -> bool:
    """Send `sig` to the process group led by `pid` (or to `pid` alone when it leads none yet).
    False when nothing was there to receive it."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class Child:
    """A process the runtime started; `exited` resolves once, with its status."""

    def __init__(self, pid: int, loop: asyncio.AbstractEventLoop) -> None:
        self.pid = pid
        self.leader: int | None = None  # behind bwrap: the app's own process, leading its group
        self.exited: asyncio.Future[ExitStatus] = loop.create_future()
        self._loop = loop
        self._pidfd: int | None = None

    def is_alive(self) -> bool:
        return not self.exited.done()

    def lead_by(self, pid: int) -> None:
        """The app runs as `pid` in a group of its own (bwrap's --new-session): signal that group,
        since bwrap forwards no signal and would take the app down with SIGKILL on its own TERM."""
        self.leader = pid

    def signal(self, sig: int) -> None:
        """Signal the child's whole process group; nothing once it has been reaped."""
        if self.is_alive():
            if self.leader is not None and signal_group(self.leader, sig) and sig != signal.SIGKILL:
                return
            signal_group(self.pid, sig)

    def _watch(self) -> None:
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            self._on_pidfd()
            return
        self._loop.add_reader(self._pidfd, self._on_pidfd)

    def _unwatch(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def _on_pidfd(self) -> None:
        raise NotImplementedError

    def _finish(self, status: ExitStatus) -> None:
        self._unwatch()
        if not self.exited.done():
            self.exited.set_result(status)

    def abandon(self) -> None:
        """Stop watching (the loop is closing); the process must already be dead."""
        self._unwatch()


class SpawnedChild(Child):
    """The daemon's own child, from `subprocess.Popen`: reaped here, by its pid."""

    def __init__(
        self, popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop, sandboxed: bool = False
    ) -> None:
        super().__init__(popen.pid, loop)
        self._popen = popen
        self._sandboxed = sandboxed  # bwrap exits with 128 + N when the app died of signal N
        self._watch()

    def _on_pidfd(self) -> None:
        # The leader is a zombie now, so its pid (the group's id) cannot be reused yet:
        # whatever it left running in its group goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.leader is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.leader, signal.SIGKILL)
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self._popen.returncode = -1
            self._finish(ExitStatus.unknown("reaped elsewhere"))
            return
        if pid == 0:
            return  # not yet: the pidfd stays watched
        result = ExitStatus.from_wait_status(status)
        if self._sandboxed:
            result = result.unwrapped()
        self._popen.returncode = os.waitstatus_to_exitcode(status)
        self._finish(result)


class ForkedChild(Child):
    """A zygote's child. The zygote reports its status with `report`; if the zygote is gone,
    the pidfd still tells when it ended, though not how."""

    GRACE_REPORT = 1.0

    def __init__(self, pid: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(pid, loop)
        self.zygote_gone = False
        self._ended = False
        self._timer: asyncio.TimerHandle | None = None
        self._watch()

    def report(self, status: ExitStatus) -> None:
        self._cancel_timer()
        self._finish(status)

    def orphaned(self) -> None:
        """The zygote died: its report will never come."""
        self.zygote_gone = True
        if self._ended:
            self._finish(ExitStatus.unknown("its zygote was gone"))

    def _on_pidfd(self) -> None:
        self._ended = True
        self._unwatch()
        if self.zygote_gone:
            self._finish(ExitStatus.unknown("its zygote was gone"))
        elif self._timer is None and not self.exited.done():
            self._timer = self._loop.call_later(self.GRACE_REPORT, self.orphaned)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def abandon(self) -> None:
        self._cancel_timer()
        super().abandon()


async def wait_exit(child: Child, within: float) -> ExitStatus | None:
    """The child's status, or None if it is still running after `within` seconds."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            return await asyncio.shield(child.exited)
    return None


async def terminate(child: Child, grace: float) -> ExitStatus:
    """TERM the child's group, wait `grace`, then KILL it, and wait for the end."""
    child.signal(signal.SIGTERM)
    status = await wait_exit(child, grace)
    if status is not None:
        return status
    child.signal(signal.SIGKILL)
    status = await wait_exit(child, grace + 5.0)
    return status if status is not None else ExitStatus.unknown("it did not die after SIGKILL")
