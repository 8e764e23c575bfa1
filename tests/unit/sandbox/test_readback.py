"""Reading back what a process really got, on processes started here with a known confinement:
the expectations are what each test set up, never what this machine happens to have."""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.runtime.isolation import Isolation, SeccompMode, Seen
from roost.runtime.ports import PortRange
from roost.runtime.sandbox import bwrap, firewall
from roost.runtime.sandbox.cgroup import Cgroup, CgroupV2, GroupLimits
from roost.runtime.sandbox.cgroup_hierarchy import CgroupVersion, Hierarchy, detect, detect_here
from roost.runtime.sandbox.confine import Confinement, LauncherPlan
from roost.runtime.sandbox.firewall import nft_binary
from roost.runtime.sandbox.readback import (
    Mount,
    Vantage,
    cgroup_limits,
    firewall_words,
    hidepid_of,
    mount_of,
    parse_mountinfo,
    program_in_tree,
    read_isolation,
    read_ruleset,
)
from roost.runtime.sandbox.seccomp import build_filter

APP = 61_007  # a uid no account uses
CGROUP_ROOT = Path("/sys/fs/cgroup")
LIMITS = GroupLimits(memory=48 * 1024 * 1024, cpu=0.25, pids=20)
TIMEOUT_EXEC = 20.0
SLEEP = ["/bin/sleep", "60"]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="only root confines processes under other uids")


def wait_for(pid: int, argv: list[str]) -> int:
    """The process running `argv` in `pid`'s tree once it has executed, within a deadline."""
    deadline = time.monotonic() + TIMEOUT_EXEC
    while time.monotonic() < deadline:
        found = program_in_tree(pid, argv)
        if found is not None:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{argv} never ran under pid {pid}")


@contextlib.contextmanager
def running(argv: list[str], pass_fds: tuple[int, ...] = ()) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(argv, pass_fds=pass_fds, start_new_session=True, cwd="/")
    try:
        yield child
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, 9)
        child.wait(timeout=30)


@pytest.fixture
def hierarchy() -> Iterator[Hierarchy]:
    """Roost's parent group under this process's own, with a name no other run uses."""
    found = detect_here(CGROUP_ROOT, f"roost-readback-{secrets.token_hex(4)}")
    if found.version is CgroupVersion.NONE:
        pytest.fail(f"this machine should have cgroups for Roost: {found.why}")
    try:
        yield found
    finally:
        for parent in found.parents.values():
            with contextlib.suppress(OSError):
                parent.rmdir()


@pytest.fixture
def group(hierarchy: Hierarchy) -> Iterator[Cgroup]:
    made = hierarchy.create("instance", LIMITS)
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A root-owned 0711 directory under /tmp (every directory above it searchable by anyone),
    holding `shared` (0777), `closed` (0700) and `closed/file` (0666)."""
    made = Path(tempfile.mkdtemp(prefix="roost-readback-", dir="/tmp"))
    try:
        made.chmod(0o711)
        (made / "shared").mkdir()
        (made / "shared").chmod(0o777)
        (made / "closed").mkdir(mode=0o700)
        (made / "closed" / "file").write_text("")
        (made / "closed" / "file").chmod(0o666)
        yield made
    finally:
        shutil.rmtree(made)


def confined(group: Cgroup, tmp_path: Path) -> tuple[Isolation, Isolation]:
    """A sleep through Roost's launcher with every piece on, and the test's own process, read back."""
    plan = LauncherPlan(
        procs=[str(p) for p in group.procs_files()],
        rlimits=[(resource.RLIMIT_NPROC, 77, 77), (resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_FSIZE, 1 << 20, -1)],
        uid=APP,
        gid=APP,
        seccomp=build_filter().program,
        netns=True,
        hide_processes=True,
    )
    confinement = Confinement(plan, group)
    argv = confinement.command(SLEEP)
    paths = ("shared", "closed", "closed/file", "")
    vantage = Vantage(paths=tuple((name or "top", tmp_path / name) for name in paths), cgroup_root=CGROUP_ROOT)
    with running(argv, confinement.pass_fds) as child:
        confinement.close()
        pid = wait_for(child.pid, SLEEP)
        return read_isolation(pid, vantage), read_isolation(os.getpid(), vantage)


@root_only
def test_a_confined_process_reads_back_as_it_was_confined(group: Cgroup, open_dir: Path) -> None:
    seen, _own = confined(group, open_dir)
    assert seen.errors == ()
    assert seen.command == "/bin/sleep"
    assert seen.identity is not None and seen.identity.uid == (APP,) * 4 and seen.identity.gid == (APP,) * 4
    assert seen.identity.capabilities == 0 and seen.identity.no_new_privs
    assert seen.seccomp is not None and seen.seccomp.mode is SeccompMode.FILTER
    assert seen.seccomp.filters is None or seen.seccomp.filters >= 1
    assert seen.cgroup is not None and seen.cgroup.path.endswith("/instance")
    assert (seen.cgroup.memory_max, seen.cgroup.cpu_max, seen.cgroup.pids_max) == (48 * 1024 * 1024, 0.25, 20)
    assert seen.rlimits["nproc"] == 77 and seen.rlimits["core"] == 0 and seen.rlimits["fsize"] == 1 << 20
    assert seen.network is not None and seen.network.own_namespace and seen.network.interfaces == ("lo",)
    assert seen.proc is not None and seen.proc.own_proc and seen.proc.hidepid == "invisible"
    assert seen.filesystem is not None and seen.filesystem.own_mount_namespace
    views = {v.label: (v.seen, v.readable, v.writable) for v in seen.filesystem.paths}
    assert views == {
        "shared": (Seen.HOST, True, True),
        "closed": (Seen.HOST, False, False),  # root's 0700
        "closed/file": (Seen.HOST, False, False),  # 0666, but behind the 0700 directory
        "top": (Seen.HOST, False, False),  # 0711: others may pass, not list
    }


@root_only
def test_the_daemon_itself_reads_back_as_unconfined(group: Cgroup, open_dir: Path) -> None:
    _, own = confined(group, open_dir)
    assert own.identity is not None and own.identity.uid[0] == 0 and not own.identity.no_new_privs
    assert own.filesystem is not None and not own.filesystem.own_mount_namespace
    assert own.network is not None and not own.network.own_namespace
    assert own.proc is not None and not own.proc.own_proc
    assert own.cgroup is not None and not own.cgroup.path.endswith("/instance")
    assert all(v.readable and v.writable for v in own.filesystem.paths), own.filesystem  # root: CAP_DAC_OVERRIDE


@root_only
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_a_bwrap_view_hides_what_it_does_not_bind(tmp_path: Path) -> None:
    code = tmp_path / "deployments" / "app" / "code"
    code.mkdir(parents=True)
    (tmp_path / "roost.db").write_text("")
    other = tmp_path / "deployments" / "other"
    other.mkdir()
    view = bwrap.View(code_dir=code, read_only=(), tmp_size=1 << 20, uid=APP, gid=APP)
    vantage = Vantage(
        paths=(
            ("code", code),
            ("tmp", Path("/tmp")),
            ("home", tmp_path),
            ("store", tmp_path / "roost.db"),
            ("app other", other),
        ),
    )
    with running(bwrap.argv(shutil.which("bwrap") or "", view, SLEEP)) as child:
        seen = read_isolation(wait_for(child.pid, SLEEP), vantage)
    assert seen.filesystem is not None and seen.filesystem.own_mount_namespace
    views = {v.label: v for v in seen.filesystem.paths}
    assert views["code"].seen is Seen.HOST and views["code"].readable and not views["code"].writable  # read-only
    assert views["tmp"].seen is Seen.OTHER and views["tmp"].writable and views["tmp"].mount == "tmpfs"
    assert views["home"].seen is Seen.OTHER  # an empty directory bwrap made on the way to the code
    assert views["store"].seen is Seen.ABSENT and views["app other"].seen is Seen.ABSENT
    assert seen.identity is not None and seen.identity.uid[0] == APP


def test_v2_limits_read_back_as_roost_wrote_them(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    parent = detect(root, {"": "/"}, "roost", pid=1).parents[""]
    CgroupV2.create(parent / "i1", LIMITS)
    files = {str(p): p.read_text() for p in (parent / "i1").iterdir()}
    limits = cgroup_limits("0::/roost/i1\n", files, root, unified=True)
    assert (limits.version, limits.path) == ("v2", "/roost/i1")
    assert (limits.memory_max, limits.cpu_max, limits.pids_max) == (LIMITS.memory, LIMITS.cpu, LIMITS.pids)
    unlimited = cgroup_limits("0::/\n", {str(root / "memory.max"): "max\n"}, root, unified=True)
    assert (unlimited.memory_max, unlimited.cpu_max, unlimited.pids_max) == (None, None, None)
    assert cgroup_limits("0::/\n", {}, root, unified=False).version == "none"


def test_the_mount_holding_a_path_is_the_last_longest_one() -> None:
    text = Path("/proc/self/mountinfo").read_text()
    mounts = parse_mountinfo(text)
    assert mount_of("/", mounts) is not None
    stacked = [
        Mount("/", "ext4", frozenset({"rw"})),
        Mount("/srv", "ext4", frozenset({"rw"})),
        Mount("/srv", "tmpfs", frozenset({"ro"})),
        Mount("/srv2", "xfs", frozenset({"rw"})),
        Mount("/proc", "proc", frozenset({"rw", "hidepid=2"})),
    ]
    assert mount_of("/srv/a/b", stacked) == stacked[2] and stacked[2].read_only
    assert mount_of("/srv2x", stacked) == stacked[0]
    assert hidepid_of(stacked) == "invisible" and hidepid_of(stacked[:1]) == "no /proc"


@root_only
@pytest.mark.skipif(nft_binary() is None, reason="needs nftables")
def test_the_firewall_table_is_read_back_for_its_uids() -> None:
    table = f"roost_rb{secrets.token_hex(4)}"
    nft = nft_binary() or ""
    firewall.apply(firewall.ruleset(table, firewall.Rules(300100, 300199, PortRange(61000, 61009))), [nft])
    try:
        ruleset = read_ruleset(Vantage(firewall_table=table, nft=nft))
        assert ruleset is not None
        assert firewall_words(table, ruleset, 300150, own_namespace=False) == (
            f"nft inet {table} covers uid 300150",
            True,
        )
        assert firewall_words(table, ruleset, 300200, own_namespace=False)[1] is False
    finally:
        firewall.apply(firewall.removal(table), [nft])
    assert read_ruleset(Vantage(firewall_table=table, nft=nft)) is None
    assert firewall_words(table, None, 300150, own_namespace=False) == (f"table inet {table} is missing", False)


def test_a_process_that_is_gone_says_so() -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with pytest.raises(ProcessLookupError):
        read_isolation(int(child.stdout), Vantage())
