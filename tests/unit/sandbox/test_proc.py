"""As root, each app's /proc shows only its own uid's processes: not the daemon's command line,
nor another app's; the host's /proc is untouched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from roost.runtime.sandbox.confine import Confinement, LauncherPlan
from roost.runtime.sandbox.proc import hiding_works

APP = 61_004  # a uid no account uses
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs apps as other uids and mounts /proc")


def pids_seen(hide: bool) -> list[int]:
    plan = LauncherPlan(uid=APP, gid=APP, hide_processes=hide)
    argv = Confinement(plan, None).command(["/bin/ls", "/proc"])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True, cwd="/")
    return [int(name) for name in done.stdout.split() if name.isdigit()]


def test_an_app_sees_only_its_own_processes() -> None:
    before = Path("/proc/self/mountinfo").read_text()
    seen = pids_seen(hide=True)
    assert os.getpid() not in seen and 1 not in seen, seen
    assert len(seen) <= 2, seen  # ls itself (and at most a pid of its own uid elsewhere)
    assert Path("/proc/self/mountinfo").read_text() == before
    assert os.getpid() in [int(name) for name in os.listdir("/proc") if name.isdigit()]


def test_without_hiding_it_sees_the_daemon() -> None:
    assert os.getpid() in pids_seen(hide=False)


def test_the_start_up_check_says_it_works_here() -> None:
    assert hiding_works(APP) == ""
