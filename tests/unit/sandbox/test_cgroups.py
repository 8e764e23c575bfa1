"""cgroup detection and file writing against directories laid out like cgroupfs (v2 and v1),
and real enforcement on this machine's hierarchy when it has one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from roost.runtime.sandbox import CgroupVersion, GroupLimits, detect, own_paths
from roost.runtime.sandbox.cgroup import CgroupV1, CgroupV2
from roost.runtime.sandbox.cgroup_hierarchy import detect_here

LIMITS = GroupLimits(memory=128 * 1024 * 1024, cpu=0.5, pids=64)


def fake_v2(root: Path, own: str = "/") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    (root / "cgroup.subtree_control").write_text("")
    base = root / own.lstrip("/")
    base.mkdir(parents=True, exist_ok=True)
    (base / "cgroup.subtree_control").write_text("")
    return base


def test_own_paths_reads_proc_self_cgroup() -> None:
    text = "9:name=systemd:/\n4:memory:/a/b\n2:cpu,cpuacct:/c\n0::/system.slice/roost.service\n"
    assert own_paths(text) == {
        "name=systemd": "/",
        "memory": "/a/b",
        "cpu": "/c",
        "cpuacct": "/c",
        "": "/system.slice/roost.service",
    }


def test_v2_is_detected_and_the_parent_enables_memory_cpu_pids(tmp_path: Path) -> None:
    base = fake_v2(tmp_path / "cg", "/system.slice/roost.service")
    hierarchy = detect(tmp_path / "cg", {"": "/system.slice/roost.service"}, "roost", pid=1)
    assert hierarchy.version is CgroupVersion.V2
    parent = base / "roost"
    assert hierarchy.parents == {"": parent}
    assert (base / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert hierarchy.describe() == "cgroup v2 (memory, cpu, pids)"


def test_v2_group_files_are_written(tmp_path: Path) -> None:
    fake_v2(tmp_path / "cg")
    hierarchy = detect(tmp_path / "cg", {"": "/"}, "roost", pid=1)
    (tmp_path / "cg" / "roost" / "memory.swap.max").write_text("max\n")  # swap accounting is on
    group = hierarchy.create("i123", LIMITS)
    directory = tmp_path / "cg" / "roost" / "i123"
    assert (directory / "memory.max").read_text() == "134217728"
    assert (directory / "memory.swap.max").read_text() == "0"
    assert (directory / "cpu.max").read_text() == "50000 100000"
    assert (directory / "pids.max").read_text() == "64"
    assert group.procs_files() == [directory / "cgroup.procs"]
    group.add(4242)
    assert (directory / "cgroup.procs").read_text() == "4242"


def test_v2_counters_oom_and_cpu_are_read_from_their_files(tmp_path: Path) -> None:
    directory = tmp_path / "g"
    directory.mkdir()
    group = CgroupV2(directory)
    assert group.oom_kills() == 0 and group.cpu_seconds() is None
    (directory / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n")
    (directory / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    assert group.oom_kills() == 1
    assert group.cpu_seconds() == 2.5


def test_v2_kill_writes_cgroup_kill_and_remove_takes_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "g"
    directory.mkdir()
    (directory / "cgroup.kill").write_text("")
    (directory / "cgroup.procs").write_text("")
    group = CgroupV2(directory)
    group.kill()
    assert (directory / "cgroup.kill").read_text() == "1"
    for item in directory.iterdir():
        item.unlink()
    group.remove()
    assert not directory.exists()


def test_v2_with_processes_in_its_own_group_moves_the_daemon_to_a_leaf(tmp_path: Path) -> None:
    """A fake cgroupfs cannot refuse with EBUSY; a real v2 would: this checks the ordinary path
    leaves the daemon where it is when enabling works."""
    base = fake_v2(tmp_path / "cg", "/svc")
    detect(tmp_path / "cg", {"": "/svc"}, "roost", pid=99)
    assert not (base / "daemon").exists()


def test_v1_and_none_are_detected(tmp_path: Path) -> None:
    root = tmp_path / "v1"
    for controller in ("memory", "cpu", "cpuacct", "pids"):
        (root / controller / "sub").mkdir(parents=True)
        (root / controller / "cgroup.procs").write_text("")
    (root / "unified").mkdir()
    (root / "unified" / "cgroup.controllers").write_text("\n")
    hierarchy = detect(root, {"memory": "/sub", "cpu": "/", "cpuacct": "/", "pids": "/"}, "roost")
    assert hierarchy.version is CgroupVersion.V1
    assert hierarchy.parents["memory"] == root / "memory" / "sub" / "roost"
    assert hierarchy.parents["pids"] == root / "pids" / "roost"
    assert hierarchy.describe() == "cgroup v1 (memory, cpu, pids)"
    empty = tmp_path / "empty"
    (empty / "unified").mkdir(parents=True)
    (empty / "unified" / "cgroup.controllers").write_text("\n")
    none = detect(empty, {}, "roost")
    assert none.version is CgroupVersion.NONE
    assert "empty unified hierarchy" in none.why


def fake_v1(root: Path) -> dict[str, Path]:
    """Roost's parent group of each v1 controller, as `detect` leaves them."""
    parents = {}
    for controller in ("memory", "cpu", "cpuacct", "pids"):
        parent = root / controller / "roost"
        parent.mkdir(parents=True)
        (root / controller / "cgroup.procs").write_text("")
        parents[controller] = parent
    return parents


def test_v1_group_files_are_written(tmp_path: Path) -> None:
    parents = fake_v1(tmp_path / "cg")
    group = CgroupV1.create({c: p / "i123" for c, p in parents.items()}, LIMITS)
    directories = {c: p / "i123" for c, p in parents.items()}
    memory, cpu, pids = directories["memory"], directories["cpu"], directories["pids"]
    assert (memory / "memory.limit_in_bytes").read_text() == "134217728"
    assert not (memory / "memory.memsw.limit_in_bytes").exists()  # no swap accounting here: not invented
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "50000"  # 0.5 core
    assert (pids / "pids.max").read_text() == "64"
    assert not list(directories["cpuacct"].iterdir())  # accounting only: nothing to limit
    assert group.procs_files() == [d / "cgroup.procs" for d in directories.values()]
    group.add(4242)
    assert all((d / "cgroup.procs").read_text() == "4242" for d in directories.values())


def test_v1_memsw_is_limited_too_when_swap_accounting_is_on(tmp_path: Path) -> None:
    """The kernel puts memory.memsw.limit_in_bytes in every new group when swap is accounted;
    a plain directory is empty, so the group is laid out as the kernel would before limiting."""
    memory = tmp_path / "memory" / "i123"
    memory.mkdir(parents=True)
    (memory / "memory.memsw.limit_in_bytes").write_text("9223372036854771712")
    CgroupV1({"memory": memory})._limit(LIMITS)
    assert (memory / "memory.limit_in_bytes").read_text() == "134217728"
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == "134217728"  # memory + swap: no swap at all


def test_v1_a_failed_limit_removes_the_directories_it_made(tmp_path: Path) -> None:
    parents = fake_v1(tmp_path / "cg")
    (parents["pids"] / "g").mkdir()  # already there: create() must fail and clean up what it made
    with pytest.raises(FileExistsError):
        CgroupV1.create({c: p / "g" for c, p in parents.items()}, LIMITS)
    assert [c for c in ("memory", "cpu", "cpuacct") if (parents[c] / "g").exists()] == []
    assert (parents["pids"] / "g").is_dir()  # not made by create(): left alone


def test_v1_a_tiny_cpu_share_is_held_to_the_kernels_minimum_quota(tmp_path: Path) -> None:
    parents = fake_v1(tmp_path / "cg")
    CgroupV1.create({c: p / "g" for c, p in parents.items()}, GroupLimits(memory=1 << 20, cpu=0.001, pids=1))
    assert (parents["cpu"] / "g" / "cpu.cfs_quota_us").read_text() == "1000"  # the kernel refuses less than 1 ms


def test_v1_counters_are_read_from_oom_control_and_cpuacct(tmp_path: Path) -> None:
    dirs = {c: tmp_path / c for c in ("memory", "cpuacct", "pids")}
    for directory in dirs.values():
        directory.mkdir()
    (dirs["memory"] / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (dirs["cpuacct"] / "cpuacct.usage").write_text("1500000000\n")
    group = CgroupV1(dirs)
    assert group.oom_kills() == 2
    assert group.cpu_seconds() == 1.5


# -- real enforcement on this machine ---------------------------------------------------------------------------------


def real_create(name: str, limits: GroupLimits):  # type: ignore[no-untyped-def]
    """A real group on this machine; as a user without a delegated cgroup, a skip that says so
    (making groups needs root or systemd's Delegate=yes; Roost then falls back to rlimits)."""
    hierarchy = detect_here(Path("/sys/fs/cgroup"), "roost-unit")
    if hierarchy.version is CgroupVersion.NONE:
        pytest.fail(f"this machine should have cgroups for Roost: {hierarchy.why}")
    try:
        return hierarchy.create(name, limits)
    except PermissionError as exc:
        if os.geteuid() == 0:
            raise
        pytest.skip(f"needs root or a delegated cgroup to make groups: {exc}")


@pytest.fixture
def real_group():  # type: ignore[no-untyped-def]
    group = real_create(f"t{os.getpid()}", GroupLimits(memory=32 * 1024 * 1024, cpu=0.5, pids=16))
    try:
        yield group
    finally:
        group.remove()


def run_in(group, code: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """A Python child that joins `group` itself before running `code` (as the launcher does)."""
    join = "".join(f"open({str(p)!r}, 'w').write(str(__import__('os').getpid()));" for p in group.procs_files())
    return subprocess.run([sys.executable, "-c", join + code], capture_output=True, text=True, timeout=60)


def test_real_memory_limit_kills_and_counts_the_oom(real_group) -> None:  # type: ignore[no-untyped-def]
    result = run_in(real_group, "x = bytearray(200 * 1024 * 1024); print('survived')")
    assert result.returncode == -9, (result.returncode, result.stderr[-300:])
    assert "survived" not in result.stdout
    assert real_group.oom_kills() >= 1


def test_real_pids_limit_stops_forks(real_group) -> None:  # type: ignore[no-untyped-def]
    code = """
import os, time
n = 0
try:
    while True:
        pid = os.fork()
        if pid == 0:
            os.close(1); os.close(2); time.sleep(30); os._exit(0)
        n += 1
except OSError as e:
    print('stopped', n, e.errno)
"""
    result = run_in(real_group, code)
    assert "stopped" in result.stdout, result.stderr[-300:]
    assert int(result.stdout.split()[1]) < 16
    real_group.kill()
    assert real_group.pids() == set()


def test_real_cpu_usage_is_counted(real_group) -> None:  # type: ignore[no-untyped-def]
    result = run_in(real_group, "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass")
    assert result.returncode == 0, result.stderr
    used = real_group.cpu_seconds()
    assert used is not None and used >= 0.25


def test_real_cpu_quota_holds_a_busy_loop_to_its_share() -> None:
    """cpu = 0.2: a busy loop for 1.5 s of wall time gets about 0.3 s of CPU, not 1.5 s."""
    group = real_create(f"q{os.getpid()}", GroupLimits(memory=64 * 1024 * 1024, cpu=0.2, pids=16))
    try:
        code = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1.5: pass\nprint(time.monotonic() - t)"
        result = run_in(group, code)
        assert result.returncode == 0, result.stderr
        wall = float(result.stdout)
        used = group.cpu_seconds()
        assert used is not None, "no CPU accounting for the group"
        cores = used / wall
        assert 0.05 < cores < 0.5, f"{used:.3f}s of CPU in {wall:.3f}s: {cores:.2f} cores under a 0.2 core quota"
    finally:
        group.remove()
