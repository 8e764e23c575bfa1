"""The seccomp deny-list: compiled by libseccomp, and refusing with EPERM in a real process
(through the launcher, as instances get it without bwrap)."""

from __future__ import annotations

import json
import subprocess
import sys

from roost.runtime.sandbox import DENIED, build_filter
from roost.runtime.sandbox.confine import LAUNCHER
from roost.runtime.sandbox.seccomp import program_fd

PROBE = """
import ctypes, errno, os, threading, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def tried(result):
    return errno.errorcode.get(ctypes.get_errno(), "ok") if result != 0 else "ok"
print("ptrace", tried(libc.ptrace(0, 0, 0, 0)))
print("mount", tried(libc.mount(b"none", b"/mnt", b"tmpfs", 0, None)))
print("unshare", tried(libc.unshare(0x10000000)))
print("keyctl", tried(libc.syscall(250, 0, 0, 0, 0)))
print("nnp", open("/proc/self/status").read().split("NoNewPrivs:")[1].split()[0])
t = threading.Thread(target=lambda: None); t.start(); t.join()
print("thread ok")
print("subprocess", subprocess.run(["true"]).returncode)
"""


def test_the_filter_compiles_and_knows_the_dangerous_calls() -> None:
    compiled = build_filter()
    assert compiled.program and len(compiled.program) % 8 == 0
    assert compiled.version.startswith("2.")
    for name in (
        "ptrace",
        "mount",
        "umount2",
        "bpf",
        "perf_event_open",
        "keyctl",
        "unshare",
        "setns",
        "io_uring_setup",
    ):
        assert name in compiled.denied
    assert set(compiled.denied) <= set(DENIED)


def test_denied_calls_answer_eperm_and_ordinary_ones_work() -> None:
    fd = program_fd(build_filter().program)
    plan = {
        "procs": [],
        "rlimits": [],
        "uid": None,
        "gid": None,
        "seccomp_fd": fd,
        "argv": [sys.executable, "-c", PROBE],
    }
    try:
        result = subprocess.run(
            [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(plan)],
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        import os

        os.close(fd)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert lines["ptrace"] == "EPERM"
    assert lines["mount"] == "EPERM"
    assert lines["unshare"] == "EPERM"
    assert lines["keyctl"] == "EPERM"
    assert lines["nnp"] == "1"
    assert lines["thread"] == "ok"
    assert lines["subprocess"] == "0"
