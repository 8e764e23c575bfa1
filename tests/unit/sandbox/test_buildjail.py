"""Pieces of the build jail that need no daemon: the build gid, writable binds, refused forks."""

from __future__ import annotations

from pathlib import Path

from roost.runtime.sandbox import build_gid
from roost.runtime.sandbox.bwrap import View, argv
from roost.runtime.sandbox.cgroup import CgroupV1, CgroupV2
from roost.runtime.sandbox.cgroup_hierarchy import CgroupVersion, Hierarchy


def test_the_build_gid_is_just_below_the_uid_range() -> None:
    assert build_gid(200000) == 199999
    assert build_gid(310000) == 309999


def test_writable_folders_are_bound_read_write_and_the_rest_read_only() -> None:
    code, venv, python = Path("/h/deployments/a/d/.code-1"), Path("/h/venvs/.tmp-k"), Path("/opt/py")
    view = View(code_dir=code, read_only=(python,), tmp_size=1024, writable=(code, venv), uid=200000, gid=199999)
    words = argv("/usr/bin/bwrap", view, ["uv"])
    binds = [tuple(words[i : i + 3]) for i in range(len(words) - 2) if words[i] in ("--bind", "--ro-bind")]
    assert ("--bind", str(code), str(code)) in binds and ("--ro-bind", str(code), str(code)) not in binds
    assert ("--bind", str(venv), str(venv)) in binds
    assert ("--ro-bind", str(python), str(python)) in binds
    assert "--regid=199999" in words and "--reuid=200000" in words


def test_refused_forks_are_read_from_pids_events(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    assert CgroupV2(v2).pids_refused() == 0  # no file: unknown, not an error
    (v2 / "pids.events").write_text("max 488\n")
    assert CgroupV2(v2).pids_refused() == 488
    pids = tmp_path / "pids"
    pids.mkdir()
    (pids / "pids.events").write_text("max 3\n")
    assert CgroupV1({"pids": pids, "memory": tmp_path / "memory"}).pids_refused() == 3


def test_leftover_groups_list_a_builds_own_group_before_the_builds_group(tmp_path: Path) -> None:
    """A crashed run's build groups are nested under `builds`: the sweep must empty them first."""
    parents = {"memory": tmp_path / "memory" / "roost-1", "pids": tmp_path / "pids" / "roost-1"}
    for parent in parents.values():
        (parent / "builds" / "d4f1c2a9").mkdir(parents=True)
        (parent / "i3kq").mkdir()
    v1 = Hierarchy(CgroupVersion.V1, parents)
    first = v1.existing()[0]
    assert sorted(map(str, first.procs_files())) == sorted(
        str(parent / "builds" / "d4f1c2a9" / "cgroup.procs") for parent in parents.values()
    )
    assert [group.name for group in v1.existing()] == ["d4f1c2a9", "builds", "i3kq"]
    v2 = Hierarchy(CgroupVersion.V2, {"": parents["memory"]})
    assert [group.procs_files()[0].parent.name for group in v2.existing()] == ["d4f1c2a9", "builds", "i3kq"]
