"""Keeping `ray start --block`, with a stand-in program in its place (real processes, no Ray): ready
on Ray's line, a failed start raised with its reason, a stop that leaves no process of its group
even one that ignores TERM, and a death reported and followed by a restart."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from roost.cluster.cluster_settings import PORTS_LEAST, ray_ports
from roost.cluster.rayproc import READY_LINE, RayCommand, RayKeeper, RayProcess, check_free, make_private
from roost.errors import PortInUse, Unavailable

# argv[1]: what to do. "serve": say Ray's line, start a child of the same group that ignores TERM
# (writing its pid to argv[2]), then wait; "die": say Ray's report of a dead process and exit 1;
# "serve-then-die": serve, and exit 1 with that report when argv[3] appears (removing it).
STAND_IN = f"""
import os, signal, subprocess, sys, time
what = sys.argv[1]
if what == "die":
    print("ERR scripts.py:87 -- gcs_server [exit code=-9]", flush=True)
    sys.exit(1)
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
open(sys.argv[2], "w").write(str(child.pid))
print({READY_LINE!r}, flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while not (what == "serve-then-die" and os.path.exists(sys.argv[3])):
    time.sleep(0.05)
os.remove(sys.argv[3])  # once: the next start serves
print("ERR scripts.py:87 -- raylet [exit code=1]", flush=True)
sys.exit(1)
"""


def command(tmp_path: Path, *args: str) -> RayCommand:
    program = tmp_path / "ray_start.py"
    program.write_text(STAND_IN)
    argv = (sys.executable, str(program), *args)
    return RayCommand("the stand-in", argv, {"PATH": os.environ["PATH"]}, tmp_path / "ray.log")


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def wait_gone(pid: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def test_a_stop_leaves_no_process_of_the_group_even_one_that_ignores_term(tmp_path: Path) -> None:
    process = RayProcess(command(tmp_path, "serve", str(tmp_path / "child")))
    await process.start(within=30)
    child = int((tmp_path / "child").read_text())
    assert process.is_running() and is_alive(child)
    await process.stop(grace=0.5)
    assert not process.is_running() and process.describe_exit() == "exit status 0"
    assert wait_gone(child)
    await process.stop()  # again: nothing to do


async def test_a_failed_start_says_which_process_died_and_where_the_log_is(tmp_path: Path) -> None:
    process = RayProcess(command(tmp_path, "die"))
    with pytest.raises(Unavailable) as caught:
        await process.start(within=30)
    assert "stopped while starting (exit status 1): gcs_server was killed by SIGKILL" in caught.value.message
    assert str(tmp_path / "ray.log") in caught.value.hint


async def test_a_death_is_reported_and_ray_started_again(tmp_path: Path) -> None:
    reports: list[str] = []
    keeper = RayKeeper(
        command(tmp_path, "serve-then-die", str(tmp_path / "child"), str(tmp_path / "die")), reports.append, grace=0.5
    )
    await keeper.start()
    first, child = keeper.process.pid, int((tmp_path / "child").read_text())
    keeping = asyncio.create_task(keeper.keep())
    try:
        (tmp_path / "die").write_text("")
        deadline = time.monotonic() + 30
        while keeper.restarts == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert keeper.restarts == 1 and keeper.process.pid != first
        assert reports[0].startswith("the stand-in stopped (exit status 1: raylet exited with status 1)")
        assert reports[-1] == "the stand-in is running again (restart 1)"
        assert wait_gone(child)  # the first run's child, which ignored TERM, went with its group
    finally:
        keeping.cancel()
        await asyncio.gather(keeping, return_exceptions=True)
        await keeper.stop()
    assert not keeper.process.is_running()


async def test_the_clusters_folder_is_made_owner_only_before_each_start(tmp_path: Path) -> None:
    """Ray makes its session folders world-writable and the token lies beside them: a folder left
    open (here 0755, as a plain mkdir makes it) is closed before Ray starts."""
    folder = tmp_path / "cluster"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    process = RayProcess(replace(command(tmp_path, "serve", str(tmp_path / "child")), private=(folder,)))
    await process.start(within=30)
    try:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        await process.stop(grace=0.5)
    fresh = tmp_path / "new" / "cluster"
    make_private(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def test_a_taken_port_of_the_block_is_said_with_the_flag_to_change() -> None:
    """The held port is the first one checked (the block's first, the GCS's, is the head's own check)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse) as caught:
            check_free(ray_ports((port - 1, port - 1 + PORTS_LEAST - 1)))
    assert caught.value.message.startswith(f"port {port} on 0.0.0.0 is in use, so the cluster's Ray")
    assert "--cluster-ports" in caught.value.hint
