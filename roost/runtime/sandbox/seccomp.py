"""The seccomp deny-list every instance runs under, compiled once by libseccomp (through
pyseccomp) into a BPF program.

Why a BPF program and not a call in the instance: the runner runs in the app's own virtual
environment, which has no pyseccomp, and command apps run no code of ours at all. So the
daemon compiles the filter here and hands the raw program to whatever starts the app: bwrap
(`--seccomp FD`, applied right before it executes the app) or, without bwrap, Roost's launcher
(`PR_SET_SECCOMP` through ctypes, right before `execve`). Forked instances inherit the zygote's.

Denied calls answer EPERM, so Python raises a readable `PermissionError`; `clone3` answers
ENOSYS, which makes the C library fall back to `clone`, whose namespace flags can be checked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from dataclasses import dataclass

DENIED: tuple[str, ...] = (
    # debugging and reading other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    # file systems and namespaces
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "open_by_handle_at", "name_to_handle_at",
    # the kernel itself
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "bpf", "perf_event_open", "reboot", "swapon", "swapoff", "acct", "quotactl",
    "syslog", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm",
    "vhangup", "lookup_dcookie", "uselib", "personality",
    # the kernel keyring
    "keyctl", "add_key", "request_key",
    # io_uring bypasses seccomp for the calls it makes; userfaultfd helps exploit races
    "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd",
)  # fmt: skip
NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


class SeccompUnavailable(Exception):
    """libseccomp or pyseccomp is missing; the message says which."""


@dataclass(frozen=True, slots=True)
class Filter:
    program: bytes  # struct sock_filter[], as bwrap --seccomp and PR_SET_SECCOMP take it
    version: str  # libseccomp's, for the start-up line
    denied: tuple[str, ...]  # the names this architecture knows (others do not exist here)


def build_filter(denied: tuple[str, ...] = DENIED) -> Filter:
    """Compile the deny-list. Raises SeccompUnavailable. A few milliseconds: call it once."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as exc:
        raise SeccompUnavailable(f"pyseccomp cannot load libseccomp ({exc})") from exc
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    known: list[str] = []
    for name in denied:
        try:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (ValueError, RuntimeError, OSError):
            continue  # not a system call on this architecture
        known.append(name)
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    fd = os.memfd_create("roost-seccomp")
    try:
        with os.fdopen(os.dup(fd), "wb") as handle:
            rules.export_bpf(handle)
        os.lseek(fd, 0, os.SEEK_SET)
        program = _read_all(fd)
    finally:
        os.close(fd)
    return Filter(program, libseccomp_version(), tuple(known))


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


def libseccomp_version() -> str:
    """ "2.5.4", or "" when the library cannot tell."""
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        library = ctypes.CDLL(name)
        function = library.seccomp_version
    except (OSError, AttributeError):
        return ""
    function.restype = ctypes.POINTER(_Version)
    version = function().contents
    return f"{version.major}.{version.minor}.{version.micro}"


def program_fd(program: bytes) -> int:
    """A memfd holding `program`, at offset 0, inheritable: pass it to bwrap or the launcher."""
    fd = os.memfd_create("roost-seccomp", 0)
    try:
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
