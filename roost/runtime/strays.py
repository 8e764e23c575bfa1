"""Recovery after a daemon crash: kill the process groups of instances a previous run left.

Only groups that are really Roost's are touched: one of their processes must carry
`ROOST_INSTANCE=` in its initial environment (/proc/<pid>/environ), and none may be
this daemon's own child. Blocking (/proc reads): call it in a thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")
MARKER = b"ROOST_INSTANCE="


def kill_strays(records: Iterable[tuple[int, int]]) -> list[int]:
    """SIGKILL each recorded (pid, pgid) group that is still Roost's; the process group ids killed.

    >>> kill_strays([(999999999, 999999999)])
    []
    """
    killed: list[int] = []
    own = {os.getpgrp(), os.getpid()}
    for pid, pgid in records:
        if pgid <= 1 or pgid in own or pgid in killed:
            continue
        members = group_members(pgid) | ({pid} if _stat(pid) is not None else set())
        if not members or not any(is_roost_instance(member) for member in members):
            continue
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        killed.append(pgid)
    return killed


def is_roost_instance(pid: int) -> bool:
    """A process started by some Roost daemon (not this one) for an instance or a zygote."""
    stat = _stat(pid)
    if stat is None or stat[0] == os.getpid():
        return False
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return any(entry.startswith(MARKER) for entry in environ.split(b"\0"))


def group_members(pgid: int) -> set[int]:
    members: set[int] = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir(PROC):
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat is not None and stat[1] == pgid:
                    members.add(int(entry.name))
    return members


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, process group id) of `pid`, or None when it is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), int(fields[2])
