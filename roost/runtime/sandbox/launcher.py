"""Roost's launcher: the first program of every sandboxed process, run by Roost's own
interpreter as `python -I -S launcher.py '<json>'`, and gone at once (it executes what it is told).

It does, in this order, what must happen before the app exists and what bwrap cannot do:
join the instance's cgroups (so everything it will ever start is counted and limited, with
no window in which a fork escapes), set the resource limits, without bwrap and as root enter a
private network namespace with only loopback up (`limits.network = "none"`: the listening
socket Roost hands in was bound outside and keeps working), set PR_SET_NO_NEW_PRIVS, and
then either execute bwrap (which builds the filesystem view, applies the seccomp program and
drops to the app's uid) or, without bwrap, drop to the app's uid and apply the seccomp
program itself, right before executing the app.

Standalone on purpose: `-I -S` ignores PYTHON* variables (the app's env could set them) and
site-packages, so it imports the standard library only, never roost.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import socket
import struct
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
EXIT_CANNOT_LAUNCH = 126
EXIT_NOT_FOUND = 127
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def say(line: str) -> None:
    sys.stderr.write(f"roost-launcher: {line}\n")
    sys.stderr.flush()


def join_cgroups(procs_files: list[str]) -> None:
    pid = str(os.getpid())
    for path in procs_files:
        with open(path, "w") as handle:
            handle.write(pid)


def set_limits(limits: list[list[int]]) -> None:
    for which, soft, hard in limits:
        resource.setrlimit(which, (soft, hard))


def prctl(libc: ctypes.CDLL, option: int, arg: int | ctypes.c_void_p) -> None:
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl({option}): {os.strerror(error)}")


def private_network(libc: ctypes.CDLL) -> None:
    """A new network namespace (needs CAP_SYS_ADMIN) with its loopback up, as bwrap's
    --unshare-net gives: the app can talk to itself on 127.0.0.1 and reach nothing else."""
    if libc.unshare(CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unshare(CLONE_NEWNET): {os.strerror(error)}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(probe.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def drop_to(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise OSError("still root after setresuid")


def install_filter(libc: ctypes.CDLL, fd: int) -> None:
    """Install the BPF program read from `fd` (struct sock_filter[], 8 bytes each)."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    program = b"".join(chunks)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"PR_SET_SECCOMP: {os.strerror(error)}")


def launch(plan: dict[str, object]) -> None:
    """Everything but the exec; raises OSError."""
    join_cgroups(list(plan.get("procs", [])))  # type: ignore[call-overload]
    set_limits(list(plan.get("rlimits", [])))  # type: ignore[call-overload]
    libc = ctypes.CDLL(None, use_errno=True)
    if plan.get("netns") is True:
        private_network(libc)
    prctl(libc, PR_SET_NO_NEW_PRIVS, 1)
    uid = plan.get("uid")
    if isinstance(uid, int):
        gid = plan.get("gid")
        drop_to(uid, gid if isinstance(gid, int) else uid)
    seccomp_fd = plan.get("seccomp_fd")
    if isinstance(seccomp_fd, int):
        install_filter(libc, seccomp_fd)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        say("usage: launcher.py '<json plan>'")
        return EXIT_CANNOT_LAUNCH
    plan = json.loads(argv[0])
    command = [str(part) for part in plan["argv"]]
    try:
        launch(plan)
    except OSError as exc:
        say(f"cannot confine {command[0]}: {exc}")
        return EXIT_CANNOT_LAUNCH
    try:
        os.execvp(command[0], command)  # noqa: S606 - an argv list, never a shell
    except OSError as exc:
        say(f"cannot run {command[0]}: {exc.strerror or exc}")
        return EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_CANNOT_LAUNCH


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
