"""Reading back the isolation a running process really got, from the kernel's own files: its
/proc/PID/status (ids, capabilities, NoNewPrivs, seccomp), mountinfo and root (its filesystem
view), cgroup (the limits written on its group), ns/* and net/dev (network), limits (rlimits),
and the home's nftables table. Never asks the settings what was meant, and never changes a thing.

The parsers are pure; `read_isolation` does the blocking reads (call it in a thread, or use
`isolation_of`). Paths are looked at through /proc/PID/root, which follows the process's own
mounts; a symlink inside a path resolves in the daemon's view (the kernel's rule), which is why
only Roost's own paths are probed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from roost.runtime.isolation import (
    CgroupLimits,
    Filesystem,
    Isolation,
    PathView,
    ProcessIdentity,
    ProcessNetwork,
    ProcView,
    Seccomp,
    SeccompMode,
    Seen,
)
from roost.runtime.sandbox.cgroup_hierarchy import own_paths

PROC = Path("/proc")
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
READ, WRITE, SEARCH = 4, 2, 1  # the rwx bits of one class
UNLIMITED_V1 = 1 << 62  # v1 prints "no limit" as the page-rounded LONG_MAX
TIMEOUT_NFT = 10.0
RLIMITS = {"Max processes": "nproc", "Max file size": "fsize", "Max core file size": "core", "Max address space": "as"}
_SKUID_RE = re.compile(r"meta skuid (\d+)(?:-(\d+))?")
T = TypeVar("T")
K = TypeVar("K")
POLL_PROGRAM = 0.02
WRAPPERS = frozenset({"bwrap", "setpriv"})  # what stands between an instance's pid and the app
_SECCOMP_MODES = {"0": SeccompMode.DISABLED, "1": SeccompMode.STRICT, "2": SeccompMode.FILTER}


@dataclass(frozen=True, slots=True)
class Vantage:
    """What a process is compared with: the host paths that matter (label, path), the cgroup
    hierarchy's root, and this home's firewall table with `nft` (None: there is none)."""

    paths: tuple[tuple[str, Path], ...] = ()
    cgroup_root: Path = Path("/sys/fs/cgroup")
    firewall_table: str | None = None
    nft: str | None = None


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of mountinfo: where (in the process's view), what type, and its options."""

    point: str
    fstype: str
    options: frozenset[str]  # per-mount and superblock options together

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


# -- pure parsers ------------------------------------------------------------------------------------------------------


def parse_status(text: str) -> dict[str, str]:
    """/proc/PID/status as {key: value}: `Uid:\\t0\\t0\\t0\\t0` -> {'Uid': '0\\t0\\t0\\t0'}."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def identity_of(status: Mapping[str, str]) -> ProcessIdentity:
    return ProcessIdentity(
        uid=tuple(int(v) for v in status["Uid"].split()),
        gid=tuple(int(v) for v in status["Gid"].split()),
        groups=tuple(int(v) for v in status.get("Groups", "").split()),
        capabilities=int(status.get("CapEff", "0"), 16),
        no_new_privs=status.get("NoNewPrivs", "0") == "1",
    )


def seccomp_of(status: Mapping[str, str]) -> Seccomp:
    filters = status.get("Seccomp_filters")
    return Seccomp(
        mode=_SECCOMP_MODES.get(status.get("Seccomp", ""), SeccompMode.UNKNOWN),
        filters=int(filters) if filters is not None and filters.isdigit() else None,
    )


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal: `\\040` -> ' '."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """/proc/PID/mountinfo, in mount order (a later mount on the same point hides the earlier)."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 6 or len(rest) < 3:
            continue
        options = frozenset(fields[5].split(",")) | frozenset(rest[2].split(","))
        mounts.append(Mount(_unescape(fields[4]), rest[0], options))
    return mounts


def mount_of(path: str, mounts: Sequence[Mount]) -> Mount | None:
    """The mount holding `path`: the longest mount point above it, the last one mounted there."""
    best: Mount | None = None
    for mount in mounts:
        point = mount.point.rstrip("/") or "/"
        inside = path == point or path.startswith(point if point == "/" else point + "/")
        if inside and (best is None or len(point) >= len(best.point.rstrip("/") or "/")):
            best = mount
    return best


def hidepid_of(mounts: Sequence[Mount]) -> str:
    """The hidepid option of the /proc the process sees: "off" when none is set."""
    proc = mount_of("/proc", mounts)
    if proc is None or proc.fstype != "proc":
        return "no /proc"
    for option in proc.options:
        if option.startswith("hidepid="):
            value = option.removeprefix("hidepid=")
            return {"0": "off", "1": "noaccess", "2": "invisible", "4": "ptraceable"}.get(value, value)
    return "off"


def may(access: int, mode: int, owner: int, group: int, identity: ProcessIdentity) -> bool:
    """Whether `identity` (its filesystem ids and capabilities) passes the mode bits of a file for
    `access` (READ, WRITE or SEARCH), as the kernel checks them without ACLs."""
    if identity.capabilities & (1 << CAP_DAC_OVERRIDE):
        return True
    if access != WRITE and identity.capabilities & (1 << CAP_DAC_READ_SEARCH):
        return True
    fsuid, fsgid = identity.uid[-1], identity.gid[-1]
    if fsuid == owner:
        shift = 6
    elif group == fsgid or group in identity.groups:
        shift = 3
    else:
        shift = 0
    return bool((mode >> shift) & access)


def cgroup_limits(cgroup_text: str, files: Mapping[str, str], root: Path, unified: bool) -> CgroupLimits:
    """The limits of the group named in /proc/PID/cgroup, from `files` ({path: text}) read under
    `root` (`cgroup_files` names them); `unified` when `root` is a v2 hierarchy."""
    paths = own_paths(cgroup_text)
    if set(paths) <= {""}:
        group = paths.get("", "")
        if not unified:
            return CgroupLimits("none", group)
        base = root / group.lstrip("/")
        quota_period = files.get(str(base / "cpu.max"), "").split()
        return CgroupLimits(
            "v2",
            group,
            memory_max=_limit(files.get(str(base / "memory.max"))),
            cpu_max=_cores(quota_period),
            pids_max=_limit(files.get(str(base / "pids.max"))),
        )
    memory, cpu, pids = (root / c / paths.get(c, "/").lstrip("/") for c in ("memory", "cpu", "pids"))
    quota, period = _limit(files.get(str(cpu / "cpu.cfs_quota_us"))), _limit(files.get(str(cpu / "cpu.cfs_period_us")))
    return CgroupLimits(
        "v1",
        paths.get("memory", ""),
        memory_max=_limit(files.get(str(memory / "memory.limit_in_bytes"))),
        cpu_max=quota / period if quota is not None and quota > 0 and period else None,
        pids_max=_limit(files.get(str(pids / "pids.max"))),
    )


def cgroup_files(cgroup_text: str, root: Path) -> list[Path]:
    """The limit files `cgroup_limits` needs for the group named in /proc/PID/cgroup."""
    paths = own_paths(cgroup_text)
    if set(paths) <= {""}:
        base = root / paths.get("", "/").lstrip("/")
        return [base / name for name in ("memory.max", "cpu.max", "pids.max")]
    memory, cpu, pids = (root / c / paths.get(c, "/").lstrip("/") for c in ("memory", "cpu", "pids"))
    return [
        memory / "memory.limit_in_bytes",
        cpu / "cpu.cfs_quota_us",
        cpu / "cpu.cfs_period_us",
        pids / "pids.max",
    ]


def _cores(quota_period: Sequence[str]) -> float | None:
    """v2's cpu.max ("50000 100000") in cores; None for "max"."""
    if len(quota_period) != 2 or not quota_period[0].isdigit():
        return None
    return int(quota_period[0]) / int(quota_period[1])


def _limit(text: str | None) -> int | None:
    """ "max", "-1", v1's huge "no limit", or nothing -> None; else the number."""
    value = (text or "").strip()
    if not value.lstrip("-").isdigit():
        return None
    number = int(value)
    return None if number < 0 or number >= UNLIMITED_V1 else number


def parse_rlimits(text: str) -> dict[str, int | None]:
    """The soft limits of /proc/PID/limits that a sandbox sets: {'nproc': 512, 'core': 0, ...}."""
    found: dict[str, int | None] = {}
    for line in text.splitlines():
        for title, key in RLIMITS.items():
            if line.startswith(title):
                soft = line[len(title) :].split()[0]
                found[key] = None if soft == "unlimited" else int(soft)
    return found


def interfaces_of(net_dev: str) -> tuple[str, ...]:
    """Interface names from /proc/PID/net/dev (two header lines, then `  lo: 123 ...`)."""
    return tuple(line.split(":", 1)[0].strip() for line in net_dev.splitlines()[2:] if ":" in line)


def uid_ranges(ruleset: str) -> list[tuple[int, int]]:
    """The uid ranges an nft table's rules match (`meta skuid 200000-265535`)."""
    return [(int(a), int(b or a)) for a, b in _SKUID_RE.findall(ruleset)]


def firewall_words(table: str | None, ruleset: str | None, uid: int, own_namespace: bool) -> tuple[str, bool]:
    """What the firewall does for a process of `uid`, in words, and whether it covers it."""
    if own_namespace:
        return "not needed: its own network namespace", False
    if table is None:
        return "no firewall table for this home", False
    if ruleset is None:
        return f"table inet {table} is missing", False
    if any(first <= uid <= last for first, last in uid_ranges(ruleset)):
        return f"nft inet {table} covers uid {uid}", True
    return f"nft inet {table} does not cover uid {uid}", False


# -- reading -----------------------------------------------------------------------------------------------------------


def read_isolation(pid: int, vantage: Vantage, ruleset: str | None = None) -> Isolation:
    """Everything about `pid` (blocking). `ruleset` is `read_ruleset(vantage)`, read once for many
    processes. Raises ProcessLookupError when the process is gone; a part that cannot be read is
    left None and said in `errors`."""
    base = PROC / str(pid)
    try:
        status = parse_status((base / "status").read_text())
        command = (base / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except FileNotFoundError as exc:
        raise ProcessLookupError(pid) from exc
    except OSError as exc:  # hidden from the daemon (not root, hidepid): say so, never fail `roost info`
        return Isolation(pid=pid, command="", errors=(f"status: {exc}",))
    errors: list[str] = []
    identity = _part(errors, "identity", lambda: identity_of(status))
    mounts = _part(errors, "mounts", lambda: parse_mountinfo((base / "mountinfo").read_text()))
    filesystem = _part(errors, "filesystem", lambda: _filesystem(base, vantage, mounts or [], identity))
    cgroup = _part(errors, "cgroup", lambda: _cgroup(base, vantage.cgroup_root))
    network = _part(errors, "network", lambda: _network(base, vantage, ruleset, identity))
    proc = _part(errors, "proc", lambda: _proc_view(base, mounts))
    return Isolation(
        pid=pid,
        command=command,
        identity=identity,
        filesystem=filesystem,
        seccomp=seccomp_of(status),
        cgroup=cgroup,
        network=network,
        proc=proc,
        rlimits=_part(errors, "rlimits", lambda: parse_rlimits((base / "limits").read_text())) or {},
        errors=tuple(errors),
    )


async def isolation_of(targets: Mapping[K, tuple[int, Vantage]]) -> dict[K, Isolation]:
    """`read_isolation` of each (pid, vantage) still running, in one thread, the firewall table
    read once (every vantage of one daemon names the same table)."""

    def read_all() -> dict[K, Isolation]:
        first = next(iter(targets.values()), None)
        ruleset = read_ruleset(first[1]) if first is not None else None
        found: dict[K, Isolation] = {}
        tree = process_tree()
        for key, (pid, vantage) in targets.items():
            with contextlib.suppress(ProcessLookupError):
                found[key] = read_isolation(behind_wrappers(pid, tree), vantage, ruleset)
        return found

    return await asyncio.to_thread(read_all)


async def isolation_of_program(
    pid: int, argv: Sequence[str], vantage: Vantage, limit_seconds: float
) -> Isolation | None:
    """The isolation of the process running `argv` in `pid`'s tree (a build step behind its
    wrappers), once it has executed, within `limit_seconds`; None when it never showed or
    ended first. Polls in a thread, so it can run beside the step it watches."""

    def wait_and_read() -> Isolation | None:
        deadline = time.monotonic() + limit_seconds
        while time.monotonic() < deadline:
            found = program_in_tree(pid, argv)
            if found is not None:
                with contextlib.suppress(ProcessLookupError):
                    return read_isolation(found, vantage, read_ruleset(vantage))
                return None
            if not (PROC / str(pid)).exists():
                return None
            time.sleep(POLL_PROGRAM)
        return None

    return await asyncio.to_thread(wait_and_read)


def read_ruleset(vantage: Vantage) -> str | None:
    """`nft list table inet <table>` in the daemon's network namespace, or None (no table, no nft)."""
    if vantage.firewall_table is None or vantage.nft is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - an argv list of our own
            [vantage.nft, "list", "table", "inet", vantage.firewall_table],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_NFT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _part(errors: list[str], name: str, read: Callable[[], T]) -> T | None:
    try:
        return read()
    except (OSError, ValueError, KeyError, IndexError) as exc:
        errors.append(f"{name}: {exc}")
        return None


def _other_namespace(base: Path, kind: str) -> bool:
    return os.readlink(base / "ns" / kind) != os.readlink(PROC / "self" / "ns" / kind)


def _filesystem(base: Path, vantage: Vantage, mounts: Sequence[Mount], identity: ProcessIdentity | None) -> Filesystem:
    os.stat(base / "root")  # PermissionError when its view is closed to the daemon: the part is then not read
    views = tuple(_path_view(base, label, path, mounts, identity) for label, path in vantage.paths)
    return Filesystem(own_mount_namespace=_other_namespace(base, "mnt"), paths=views)


def _path_view(
    base: Path, label: str, path: Path, mounts: Sequence[Mount], identity: ProcessIdentity | None
) -> PathView:
    root = base / "root"
    try:
        seen = _stat_inside(root, path)
    except (FileNotFoundError, NotADirectoryError):
        return PathView(label, str(path), Seen.ABSENT)
    except OSError:  # the daemon may not look there (not root): say so rather than guess
        return PathView(label, str(path), Seen.UNKNOWN)
    try:
        host = path.stat()
        same = (host.st_dev, host.st_ino) == (seen.st_dev, seen.st_ino)
    except OSError:
        same = False
    mount = mount_of(str(path), mounts)
    reachable = identity is not None and _reachable(root, path, identity)
    readable = reachable and identity is not None and may(READ, seen.st_mode, seen.st_uid, seen.st_gid, identity)
    writable = reachable and identity is not None and (mount is None or not mount.read_only)
    writable = writable and identity is not None and may(WRITE, seen.st_mode, seen.st_uid, seen.st_gid, identity)
    return PathView(
        label, str(path), Seen.HOST if same else Seen.OTHER, readable, writable, mount.fstype if mount else ""
    )


def _stat_inside(root: Path, path: Path) -> os.stat_result:
    return (root / str(path).lstrip("/")).stat()


def _reachable(root: Path, path: Path, identity: ProcessIdentity) -> bool:
    """Whether the process may search every directory above `path` in its view."""
    try:
        above = [_stat_inside(root, parent) for parent in path.parents]
    except OSError:
        return False
    return all(may(SEARCH, s.st_mode, s.st_uid, s.st_gid, identity) for s in above)


def _cgroup(base: Path, root: Path) -> CgroupLimits:
    text = (base / "cgroup").read_text()
    files: dict[str, str] = {}
    for path in cgroup_files(text, root):
        with contextlib.suppress(OSError):
            files[str(path)] = path.read_text()
    return cgroup_limits(text, files, root, unified=(root / "cgroup.controllers").is_file())


def _network(base: Path, vantage: Vantage, ruleset: str | None, identity: ProcessIdentity | None) -> ProcessNetwork:
    own = _other_namespace(base, "net")
    interfaces = interfaces_of((base / "net" / "dev").read_text())
    uid = identity.uid[1] if identity is not None else -1
    words, covers = firewall_words(vantage.firewall_table, ruleset, uid, own)
    return ProcessNetwork(own, interfaces, words, covers)


def _proc_view(base: Path, mounts: Sequence[Mount] | None) -> ProcView:
    host = (PROC / "self" / "root" / "proc").stat()
    seen = (base / "root" / "proc").stat()
    return ProcView(own_proc=(host.st_dev, host.st_ino) != (seen.st_dev, seen.st_ino), hidepid=hidepid_of(mounts or []))


def process_tree() -> dict[int, list[int]]:
    """Every process's children, by pid (from each /proc/PID/stat). Blocking."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parent = int((PROC / entry.name / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    return children


def behind_wrappers(pid: int, tree: Mapping[int, list[int]]) -> int:
    """The app's own process behind `pid`: a command app's instance is bwrap, which forks the
    command it confines (setpriv and `sh -c exec` replace themselves), and bwrap itself runs as
    root with the host's view, so reading it back would describe the wrapper, not the app.
    `pid` itself when it is no wrapper or has not forked yet. Blocking."""
    current = pid
    while _program(current) in WRAPPERS and len(tree.get(current, [])) == 1:
        current = tree[current][0]
    return current


def _program(pid: int) -> str:
    """The file name of `pid`'s argv[0] ("" when it is gone)."""
    try:
        argv0 = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return ""
    return os.path.basename(argv0.decode(errors="replace"))


def program_in_tree(pid: int, argv: Sequence[str]) -> int | None:
    """The process of `pid`'s tree (itself first, then its descendants) whose command line is
    exactly `argv`: what a wrapper chain (enter.py, bwrap, setpriv) ends in, once it has executed
    it. Blocking: reads every process's stat, and the command lines of the tree only."""
    wanted = [part.encode() for part in argv]
    children = process_tree()
    queue = [pid]
    while queue:
        current = queue.pop(0)
        with contextlib.suppress(OSError):
            if (PROC / str(current) / "cmdline").read_bytes().split(b"\0")[:-1] == wanted:
                return current
        queue.extend(sorted(children.get(current, [])))
    return None
