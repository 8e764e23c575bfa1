"""A SIGKILLed daemon: what its builds and instances leave must be gone once the next one is ready."""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from tests.e2e.apps import get, pushed, wait_until, write_app
from tests.e2e.harness import Daemon, base_env, leftover_builds, leftover_instances, running, spawn
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
    """compileall processes (the parent and its workers) compiling an app's code in `home` (not a venv's).

    Not roost/builder/enter.py, nor (for a jailed build) the sandbox's launcher.py, on its way to exec
    compileall: its command line names compileall too, but it joins the build's cgroup only once it
    runs, so it is left to be seen after its exec."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_alive(int(entry.name)):
            line = cmdline(int(entry.name))
            if (
                str(home / "deployments") in line
                and "compileall" in line
                and "enter.py" not in line
                and "launcher.py" not in line
            ):  # its workers are forks: the same command line
                found.add(int(entry.name))
    return found


def ppid(pid: int) -> int:
    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).ppid()
    return 0


def compile_workers(home: Path) -> set[int]:
    """compileall's worker processes: forks of a compileall process (not of bwrap, whose command line
    names compileall too). They, unlike compileall itself (bwrap's child, which dies with it), do not
    die with the daemon: until they run, a kill would leave nothing behind to test."""
    found = compiling(home)
    parents = {pid: ppid(pid) for pid in found}
    return {
        pid
        for pid, parent in parents.items()
        if parent in found and Path(cmdline(parent).split(" ", 1)[0]).name != "bwrap"
    }


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
            wait_until("compileall's workers running", lambda: compile_workers(home), timeout=300, every=0.1)
            old = compiling(home)
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


# -- the crash-consistency probe: random SIGKILLs during push, promote, rollback and env set -------------------------

KILLS = int(os.environ.get("ROOST_TEST_CRASH_KILLS", "10"))
LATEST_KILL = 3.0  # seconds after an operation starts: a push of a small app ends within about that
APPS = ("alpha", "beta")


def small_app(root: Path, name: str, version: int) -> Path:
    """A handler app with no dependencies (its venv is reused): a push builds in seconds."""
    folder = root / f"{name}-{version}"
    folder.mkdir()
    (folder / "roost.toml").write_text(f'name = "{name}"\nentrypoint = "main:handler"\n')
    (folder / "main.py").write_text(f'def handler(request):\n    return "{name} v{version}\\n"\n')
    return folder


def old_run(home: Path) -> set[int]:
    """The processes a killed daemon of `home` left: instances, zygotes and builds (by their marks)."""
    return set(leftover_instances(home)) | set(leftover_builds(home))


def listed(daemon: Daemon) -> dict[str, dict[str, Any]]:
    result = daemon.cli("list", "--json")
    assert result.returncode == 0, result.stderr
    return {app["name"]: app for app in json.loads(result.stdout)}


def deployments(daemon: Daemon, app: str) -> list[dict[str, Any]]:
    result = daemon.cli("deployments", app, "--json")
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def check_recovered(daemon: Daemon, known: set[str], old: set[int], context: str) -> dict[str, list[str]]:
    """The invariants after a restart; each app's ready deployment ids, newest first."""
    alive = sorted(pid for pid in old if is_alive(pid))
    assert alive == [], f"{context}: processes of the killed run still alive: {[cmdline(p) for p in alive]}"
    apps = listed(daemon)
    assert known <= set(apps), f"{context}: apps lost: {known - set(apps)}"
    ready: dict[str, list[str]] = {}
    for name in apps:
        found = deployments(daemon, name)
        building = [d["id"] for d in found if d["status"] == "building"]
        assert building == [], f"{context}: {name} has deployments still building: {building}"
        ready[name] = [d["id"] for d in found if d["status"] == "ready"]
        if any(d["status"] == "ready" and d.get("traffic") for d in found):
            answer = get(daemon, f"{name}.localhost")
            assert answer.status_code == 200, f"{context}: {name} answers {answer.status_code}: {answer.text}"
            assert answer.text.startswith(name), f"{context}: {name} serves {answer.text!r}"
    assert half_built(daemon.home) == [], f"{context}: half-built folders left"
    return ready


def check_env_kept(daemon: Daemon, acknowledged: dict[str, int], context: str) -> None:
    """An `env set` that answered before the kill is kept (a later one, answered or not, may have replaced it)."""
    for app, step in acknowledged.items():
        result = daemon.cli("env", app, "list", "--json", "--reveal")
        assert result.returncode == 0, result.stderr
        values = {entry["name"]: entry["value"] for entry in json.loads(result.stdout)}
        assert int(values.get("STEP", -1)) >= step, f"{context}: {app} lost STEP={step}: {values}"


def an_operation(rng: random.Random, root: Path, ready: dict[str, list[str]], step: int) -> list[str]:
    """The argv (after `roost`) of one operation chosen at random."""
    app = rng.choice(APPS)
    kind = rng.choice(["push", "push", "promote", "rollback", "env"])
    if kind == "promote" and len(ready.get(app, [])) > 1:
        return ["promote", app, rng.choice(ready[app][1:])]
    if kind == "rollback" and len(ready.get(app, [])) > 1:
        return ["rollback", app]
    if kind == "env" and ready.get(app):
        return ["env", app, "set", f"STEP={step}"]
    return ["push", str(small_app(root, app, step))]


def test_random_sigkills_lose_nothing_and_leave_no_process(tmp_path: Path) -> None:
    seed = int(os.environ.get("ROOST_TEST_CRASH_SEED", str(secrets.randbelow(2**32))))
    print(f"crash-consistency seed {seed} (set ROOST_TEST_CRASH_SEED={seed} to replay), {KILLS} kills")
    rng = random.Random(seed)  # noqa: S311 - picks moments and operations, guards nothing
    home = tmp_path / "home"
    home.mkdir()
    with running(home) as first:
        for app in APPS:
            pushed(first, small_app(tmp_path, app, 0))
        known = set(listed(first))
    old: set[int] = set()
    left_behind = 0  # processes the kills left for the restarts to find: the process check is not vacuous
    acknowledged: dict[str, int] = {}  # app -> STEP of its last `env set` that answered before its kill
    for step in range(1, KILLS + 1):
        context = f"seed {seed}, kill {step}"
        daemon = spawn(home)
        try:
            daemon.wait_ready()
            ready = check_recovered(daemon, known, old, context)
            check_env_kept(daemon, acknowledged, context)
            known |= set(ready)
            argv = an_operation(rng, tmp_path, ready, step)
            operation = subprocess.Popen(
                [sys.executable, "-m", "roost", *argv], env=base_env(home), cwd=str(tmp_path),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                moment = rng.uniform(0, LATEST_KILL)
                time.sleep(moment)  # the random moment of the kill, not a wait for a state
                answered = operation.poll() == 0
                daemon.signal(signal.SIGKILL)
                daemon.wait_exit()
            finally:
                operation.kill()
                operation.wait(timeout=10)
            if answered and argv[0] == "env":
                acknowledged[argv[1]] = step
            old = old_run(home)
            left_behind += len(old)
            print(f"kill {step}: {argv[0]} {Path(argv[1]).name} after {moment:.2f}s, {len(old)} processes left behind")
        except BaseException:
            daemon.kill_group()  # and what it left: the test ends here
            raise
        close_streams(daemon)
    with running(home) as last:
        check_recovered(last, known, old, f"seed {seed}, after the last kill")
        check_env_kept(last, acknowledged, f"seed {seed}, after the last kill")
    assert left_behind > 0, "no kill left a process behind: the restarts' process check proved nothing"


def close_streams(daemon: Daemon) -> None:
    """The pipes of a daemon that was killed and has been drained to its end."""
    for stream in (daemon.proc.stdout, daemon.proc.stderr):
        if stream is not None:
            stream.close()
