"""Roost's launcher: the first program of every sandboxed process, run by Roost's own
interpreter as `python -I -S launcher.py '<json>'`, and gone at once (it executes what it is told).

It does, in this order, what must happen before the app exists and what bwrap cannot do:
join the instance's cgroups (so everything it will ever start is counted and limited, with
no window in which a fork escapes), set the resource limits, without bwrap and as root enter a
private network namespace with only loopback up (`limits.network = "none"`: the listening
socket Roost hands in was bound outside and keeps working), without bwrap and as root give the
app's uid a view of the paths it needs (the interpreter's prefix, the runner, its code, venv
and TMPDIR) when a directory above them is closed to it (see `reveal`), as root mount a /proc
that shows the app only its own uid's processes (`hide_processes`), set PR_SET_NO_NEW_PRIVS, and
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
CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 0x80000
MS_NOEXEC = 0x8
HIDDEN_TMPFS = b"mode=0755,size=64k"
HIDEPID = b"hidepid=invisible"
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


def can_enter(path: str, uid: int, gid: int) -> bool:
    """Whether `uid` (with only `gid`, as the app runs) may search directory `path`."""
    info = os.stat(path)
    if info.st_uid == uid:
        return bool(info.st_mode & 0o100)
    if info.st_gid == gid:
        return bool(info.st_mode & 0o010)
    return bool(info.st_mode & 0o001)


def closed_above(path: str, uid: int, gid: int) -> str | None:
    """The highest directory above `path` that `uid` cannot enter, or None."""
    parts = path.strip("/").split("/")[:-1]
    for depth in range(len(parts)):
        parent = "/" + "/".join(parts[: depth + 1])
        if not can_enter(parent, uid, gid):
            return parent
    return None


def is_under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def mount(
    libc: ctypes.CDLL, source: str | None, target: str, fstype: str | None, flags: int, data: bytes | None
) -> None:
    encoded = [None if value is None else value.encode() for value in (source, target, fstype)]
    if libc.mount(encoded[0], encoded[1], encoded[2], ctypes.c_ulong(flags), data) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {target}: {os.strerror(error)}")


def closed_tops(paths: list[tuple[str, bool]], uid: int, gid: int) -> list[str]:
    """The highest directories closed to `uid` above any of `paths` (none nested in another)."""
    tops = sorted({top for path, _ in paths if (top := closed_above(path, uid, gid)) is not None})
    return [top for top in tops if not any(other != top and is_under(top, other) for other in tops)]


def private_mounts(libc: ctypes.CDLL) -> None:
    """A mount namespace of our own (needs CAP_SYS_ADMIN) whose mounts never reach the host."""
    if libc.unshare(CLONE_NEWNS) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unshare(CLONE_NEWNS): {os.strerror(error)}")
    mount(libc, None, "/", None, MS_REC | MS_SLAVE, None)


def reveal(libc: ctypes.CDLL, paths: list[tuple[str, bool]], tops: list[str]) -> None:
    """Give the app's uid each of `paths` ([path, writable]) at its own path although `tops`
    (pyenv's 0700 /root, a home's 0700 folder) are closed to it, as bwrap's binds do: in our
    private mount namespace a read-only tmpfs hides each top, holding only the way down to the
    paths, bound there (read-only unless writable). The host's modes are never changed and
    nothing else of a top is seen."""
    wanted = sorted(paths, key=lambda item: item[0].count("/"))
    # opened in the new namespace (a bind's source must be one of its mounts), before the tmpfs hides them
    sources = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path, _ in wanted}
    for top in tops:
        mount(libc, "tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, HIDDEN_TMPFS)
    bound: list[str] = []
    for path, writable in wanted:
        if any(is_under(path, top) for top in tops) and not any(is_under(path, done) for done in bound):
            bind_at(libc, sources[path], path, writable)
            bound.append(path)
    for top in tops:
        mount(libc, None, top, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, HIDDEN_TMPFS)
    for fd in sources.values():
        os.close(fd)


def hide_processes(libc: ctypes.CDLL) -> None:
    """A /proc of our own with hidepid=invisible (Linux 5.8+: options per mount): the app sees
    only its own uid's processes, never the daemon's command line or another app's."""
    mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, HIDEPID)


def bind_at(libc: ctypes.CDLL, source_fd: int, path: str, writable: bool) -> None:
    """Bind what `source_fd` opened at `path`, making the way down (root's, 0755) in the tmpfs."""
    previous = os.umask(0o022)
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        if os.path.isdir(f"/proc/self/fd/{source_fd}"):
            os.makedirs(path, mode=0o755, exist_ok=True)
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    finally:
        os.umask(previous)
    mount(libc, f"/proc/self/fd/{source_fd}", path, None, MS_BIND | MS_REC, None)
    read_only = 0 if writable else MS_RDONLY
    mount(libc, None, path, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | read_only, None)


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
    uid, gid = plan.get("uid"), plan.get("gid")
    gid = gid if isinstance(gid, int) else uid
    paths = [(str(path), bool(writable)) for path, writable in plan.get("reveal", [])]  # type: ignore[attr-defined]
    tops = closed_tops(paths, uid, gid) if isinstance(uid, int) and isinstance(gid, int) else []
    hide = plan.get("hide_processes") is True
    if tops or hide:
        cwd = os.getcwd()
        private_mounts(libc)
        if tops:
            reveal(libc, paths, tops)
        if hide:
            hide_processes(libc)
        os.chdir(cwd)  # the working directory as the new view shows it
    prctl(libc, PR_SET_NO_NEW_PRIVS, 1)
    if isinstance(uid, int) and isinstance(gid, int):
        drop_to(uid, gid)
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
