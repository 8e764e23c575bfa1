"""The builds' enclosure: marked subprocesses are found and killed; other homes' are not."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from roost.builder.enclosure import MARKER, Enclosure, home_id
from roost.builder.process import run
from roost.runtime.sandbox import CgroupVersion, detect, own_paths
from roost.runtime.sandbox.cgroup_hierarchy import detect_here


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


def test_every_build_step_and_what_it_forks_is_in_the_builds_cgroup(tmp_path: Path) -> None:
    hierarchy = detect_here(Path("/sys/fs/cgroup"), f"roost-unit-builds-{os.getpid()}")
    if hierarchy.version is CgroupVersion.NONE:
        pytest.fail(f"this machine should have cgroups for Roost: {hierarchy.why}")
    group = hierarchy.create("builds", None)
    try:
        enclosure = Enclosure(home_id(tmp_path), tuple(str(p) for p in group.procs_files()))
        grandchild = "print(open('/proc/self/cgroup').read())"
        child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
        lines: list[str] = []
        argv = [sys.executable, "-c", child]
        completed = asyncio.run(run(argv, cwd=tmp_path, env={}, log=lines.append, enclosure=enclosure))
        assert completed.ok, lines
        memberships = own_paths("\n".join(line.strip() for line in lines))
        for controller in hierarchy.parents:
            assert memberships[controller].endswith("/builds"), (controller, memberships)
        assert group.pids() == set(), "the step and its child are gone once run() returns"
    finally:
        group.remove()
        for parent in hierarchy.parents.values():
            parent.rmdir()


def test_a_group_without_limits_writes_no_limit_file(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    hierarchy = detect(root, {"": "/"}, "roost", pid=1)
    hierarchy.create("builds", None)
    assert sorted(p.name for p in (root / "roost" / "builds").iterdir()) == []
