"""The builds' enclosure: marked subprocesses are found and killed; other homes' are not."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from roost.build.enclosure import MARKER, Enclosure, home_id
from roost.build.process import run


def sleeper(mark: str) -> subprocess.Popen[bytes]:
    """A process in a session of its own (as a re-parented build step is), carrying `mark`."""
    env = {**os.environ, MARKER: mark}
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env, start_new_session=True)


def test_kill_stragglers_kills_this_homes_builds_only(tmp_path: Path) -> None:
    ours, theirs = Enclosure(home_id(tmp_path / "a")), Enclosure(home_id(tmp_path / "b"))
    mine, other = sleeper(ours.home), sleeper(theirs.home)
    try:
        assert mine.pid in ours.stragglers() and other.pid not in ours.stragglers()
        assert ours.kill_stragglers() == [mine.pid]
        assert mine.wait(timeout=10) < 0
        assert other.poll() is None
    finally:
        for process in (mine, other):
            process.kill()
            process.wait(timeout=10)


def test_run_marks_the_subprocess_and_what_it_starts(tmp_path: Path) -> None:
    enclosure = Enclosure(home_id(tmp_path))
    lines: list[str] = []
    script = (
        "import os, subprocess, sys; subprocess.run([sys.executable, '-c', 'import os; print(os.environ[\"%s\"])'])"
    )
    completed = asyncio.run(
        run([sys.executable, "-c", script % MARKER], cwd=tmp_path, env={}, log=lines.append, enclosure=enclosure)
    )
    assert completed.ok
    assert lines == [f"    {enclosure.home}"]


def test_home_ids_differ_per_home(tmp_path: Path) -> None:
    assert home_id(tmp_path / "a") != home_id(tmp_path / "b")
    assert home_id(tmp_path / "a") == home_id(tmp_path / "x" / ".." / "a")
