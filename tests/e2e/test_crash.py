"""A SIGKILLed daemon: what its builds and instances leave must be gone once the next one is ready."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.e2e.apps import wait_until, write_app
from tests.e2e.harness import running
from tests.e2e.test_pipeline import spawn_push

SLOW_FILES = 1200  # tens of seconds of compileall over its workers, with little memory


def slow_compiling_app(root: Path) -> Path:
    """An app whose bytecode step runs for many seconds, in compileall's worker processes."""
    files = {"roost.toml": 'name = "slowcompile"\nentrypoint = "main:handler"\n', "main.py": HELLO}
    body = "".join(f"def f{i}(a, b={i}):\n    return [a, b, str({i})]\n" for i in range(150))
    for n in range(SLOW_FILES):
        files[f"m{n}.py"] = f"N = {n}\n{body}"
    return write_app(root, "slowcompile", files)


HELLO = """\
def handler(request):
    return "hello\\n"
"""


def is_alive(pid: int) -> bool:
    """Running (a zombie nobody reaps is dead for this purpose)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def compiling(home: Path) -> set[int]:
    """compileall processes (the parent and its workers) compiling an app's code in `home` (not a venv's)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_alive(int(entry.name)):
            line = cmdline(int(entry.name))
            if (
                str(home / "deployments") in line and "compileall" in line
            ):  # its workers are forks: the same command line
                found.add(int(entry.name))
    return found


def in_builds_cgroup(pid: int) -> bool:
    try:
        return "/builds" in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return True  # gone meanwhile


def half_built(home: Path) -> list[Path]:
    return sorted((home / "deployments").glob("*/*/.code-*"))


def test_builds_of_a_killed_daemon_are_gone_when_the_next_is_ready(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    app = slow_compiling_app(tmp_path)
    with running(home) as first:
        push = spawn_push(first, app)
        try:
            old = wait_until("compileall running", lambda: compiling(home), timeout=300, every=0.1)
            if "sandbox: cgroup" in first.output():
                assert all(in_builds_cgroup(pid) for pid in old), "every build process joins the builds' cgroup"
            first.signal(signal.SIGKILL)
            first.wait_exit()
        finally:
            stop(push)
        assert any(is_alive(pid) for pid in old), "the build must outlive the daemon for this test to mean anything"
        with running(home) as second:
            alive = [pid for pid in old if is_alive(pid)]
            assert alive == [], f"build processes of the killed run still running: {[cmdline(p) for p in alive]}"
            assert half_built(home) == []
            assert "killed" in second.output()


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()
