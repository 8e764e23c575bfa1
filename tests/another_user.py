"""Acting as another user in a test without that user reading the checkout (a clone in a 0700
folder, an interpreter under a 0700 /root): fork after every import, drop to the uid in the
child, run one function there and hand its answer back. Root only (setresuid)."""

from __future__ import annotations

import os
import signal
import traceback
import warnings
from collections.abc import Callable

NOBODY = 65534
TIMEOUT_CHILD = 30  # seconds: SIGALRM ends a child that hangs


class ChildFailed(AssertionError):
    """The function raised (its traceback is the message) or the child died."""


def as_user(uid: int, act: Callable[[], str]) -> str:
    """`act()` in a forked child running as `uid` (gid `uid`, no other groups). Everything `act`
    needs must be imported (and files it reads opened) before: the child may read nothing of the
    checkout or of the interpreter's prefix."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with the harness's pump threads alive
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_fd)
        _child(uid, act, write_fd)
    os.close(write_fd)
    with os.fdopen(read_fd, encoding="utf-8", errors="replace") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise ChildFailed(f"as uid {uid}: exit {os.waitstatus_to_exitcode(status)}\n{answer}")
    return answer


def _child(uid: int, act: Callable[[], str], write_fd: int) -> None:
    code = 1
    try:
        signal.alarm(TIMEOUT_CHILD)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        answer = act()
        code = 0
    except BaseException:  # noqa: BLE001 - everything goes back to the parent as text
        answer = traceback.format_exc()
    try:
        os.write(write_fd, answer.encode())
    finally:
        os._exit(code)
