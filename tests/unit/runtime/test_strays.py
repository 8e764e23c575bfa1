"""Recovery: the process groups a previous daemon left are killed, and nothing else."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from roost.model import AppName, DeploymentId, InstanceId, InstanceRecord, InstanceState
from roost.runtime import kill_strays
from tests.unit.runtime.conftest import Harness

# A leader that starts a child in its group, says so, and sleeps: a stray instance in miniature.
SLEEPER = [
    sys.executable,
    "-c",
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n",
]


def live_members(pgid: int) -> list[int]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


@pytest.fixture
def spawn() -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            SLEEPER, env=env, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"  # its child exists now
        return process

    try:
        yield start
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            assert process.stdout is not None
            process.stdout.close()


def test_a_recorded_stray_group_is_killed_and_an_unrelated_one_is_not(spawn: object) -> None:
    assert callable(spawn)
    stray = spawn({"PATH": "/usr/bin:/bin", "ROOST_INSTANCE": "iold000001"})
    unrelated = spawn({"PATH": "/usr/bin:/bin"})
    assert len(live_members(stray.pid)) == 2
    killed = kill_strays([(stray.pid, stray.pid), (unrelated.pid, unrelated.pid), (os.getpid(), os.getpgrp())])
    assert killed == [stray.pid]
    assert stray.wait(10) == -signal.SIGKILL
    assert unrelated.poll() is None
    psutil.wait_procs([psutil.Process(p) for p in live_members(stray.pid)], timeout=10)
    assert not live_members(stray.pid)


def test_a_group_whose_leader_is_gone_is_still_found_by_its_members(spawn: object) -> None:
    assert callable(spawn)
    stray = spawn({"PATH": "/usr/bin:/bin", "ROOST_INSTANCE": "iold000002"})
    os.kill(stray.pid, signal.SIGKILL)
    stray.wait(10)
    assert len(live_members(stray.pid)) == 1  # the orphaned child, still in the group
    assert kill_strays([(stray.pid, stray.pid)]) == [stray.pid]
    psutil.wait_procs([psutil.Process(p) for p in live_members(stray.pid)], timeout=10)
    assert not live_members(stray.pid)


def test_records_of_processes_long_gone_are_ignored() -> None:
    assert kill_strays([(2**22 + 12345, 2**22 + 12345), (1, 1), (0, 0)]) == []


def leftover(pid: int | None, name: str) -> InstanceRecord:
    """The store's record of an instance that was live when the previous daemon stopped."""
    return InstanceRecord(
        InstanceId(name), AppName("hello"), DeploymentId("d0000001"), pid, pid, InstanceState.READY, 0.0
    )


async def test_the_runtime_ends_what_a_previous_run_left_through_its_protocol(spawn: object, harness: Harness) -> None:
    """Control hands the store's records to `Runtime.recover`; the local runtime kills only Roost's groups."""
    assert callable(spawn)
    stray = spawn({"PATH": "/usr/bin:/bin", "ROOST_INSTANCE": "iold000003"})
    unrelated = spawn({"PATH": "/usr/bin:/bin"})
    records = [leftover(stray.pid, "iold000003"), leftover(unrelated.pid, "iold000004"), leftover(None, "iold000005")]
    assert await harness.runtime.recover(records) == [f"process group {stray.pid}"]
    assert await asyncio.to_thread(stray.wait, 10) == -signal.SIGKILL
    assert unrelated.poll() is None
    assert await harness.runtime.recover([]) == []
