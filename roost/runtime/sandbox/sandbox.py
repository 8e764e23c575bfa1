"""The sandbox as the runtime sees it: what this host offers (detected once, said once), each
app's identity, and a `Confinement` per process to spawn.

Per-instance /tmp under a shared zygote: a fresh instance, a command app and a zygote each get
their own bwrap view with a private tmpfs on /tmp (TMPDIR and HOME). A forked instance shares
its zygote's view, so its TMPDIR is `/tmp/<instance>` inside that tmpfs, created by the child
and wiped by the zygote when it reaps it: bwrap alone cannot give a fork its own mount, and
unshare+mount in the child would need privileges the instance must not have. The tmpfs size
limit is then shared by the deployment's forked instances. Without bwrap each instance gets a
TMPDIR directory under $ROOST_HOME/run/tmp, removed at stop, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import resource
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from roost.model import LimitsConfig, Network
from roost.runtime.ports import PortBook
from roost.runtime.protocol import DeploymentSpec
from roost.runtime.sandbox import buildnet, bwrap, firewall, proc, reveal
from roost.runtime.sandbox.cgroup import Cgroup, GroupLimits
from roost.runtime.sandbox.cgroup_hierarchy import CgroupVersion, Hierarchy, detect_here
from roost.runtime.sandbox.confine import Confinement, LauncherPlan
from roost.runtime.sandbox.permissions import open_for
from roost.runtime.sandbox.sandbox_settings import SandboxSettings
from roost.runtime.sandbox.seccomp import Filter, SeccompUnavailable, build_filter
from roost.runtime.sandbox.uids import UidBook

log = logging.getLogger("roost.runtime")
SANDBOX_TMP = Path("/tmp")  # noqa: S108 - inside the sandbox, a private tmpfs
BUILD_GROUP = "builds"  # never an instance's name: those are random ids
OPEN_PORTS = (
    "no firewall: other apps can connect to an instance's port and to the admin API's TCP port, "
    "and other hosts too when an app binds 0.0.0.0"
)


@dataclass(slots=True)
class Facilities:
    """What this host offers; `notes` says what falls back, and why."""

    hierarchy: Hierarchy = field(default_factory=lambda: Hierarchy(CgroupVersion.NONE, why="not detected"))
    bwrap: str | None = None
    bwrap_version: str = ""
    filter: Filter | None = None
    root: bool = False
    uids: UidBook | None = None
    firewall: str | None = None  # the nftables table closing the instance ports, once installed
    build_net: buildnet.BuildNet | None = None  # what that table leaves open to builds' sockets
    hide_processes: bool = False  # each app's /proc shows only its own uid's processes
    notes: list[str] = field(default_factory=list)


class Sandbox:
    """Example::

    sandbox = Sandbox(SandboxSettings(), home)
    await sandbox.detect()                      # once; logs one line
    await sandbox.prepare(spec)                 # the app's uid, readable code
    confinement = sandbox.confine(spec, "i3kq...", forked=False)
    """

    def __init__(self, settings: SandboxSettings, home: Path) -> None:
        self.settings = settings
        self.home = home
        self.facilities = Facilities()
        self.ports = PortBook(settings.ports)
        self._detected = False
        self._detecting = asyncio.Lock()
        self._uids: dict[str, int] = {}
        self._opened: set[Path] = set()
        self._build_group: Cgroup | None = None
        self._told_network: set[str] = set()  # deployments whose network = "none" could not be had, said once

    # -- detection -------------------------------------------------------------------------------------------------

    async def detect(self) -> None:
        """Find what the host offers and say it once (blocking probes, in a thread). Idempotent,
        and once only when called concurrently: two detections would make two uid books, each
        with its own lock, racing on one file."""
        async with self._detecting:
            if not self._detected:
                self.facilities = await asyncio.to_thread(self._detect)
                self._detected = True
                log.info("%s", self.summary())

    def _detect(self) -> Facilities:
        s = self.settings
        found = Facilities(root=os.geteuid() == 0)
        if not s.enabled:
            found.notes.append("sandbox disabled")
            return found
        if s.cgroups:
            found.hierarchy = detect_here(s.cgroup_root, self.cgroup_parent())
        else:
            found.hierarchy = Hierarchy(CgroupVersion.NONE, why="cgroups disabled")
        if found.root and s.separate_users:
            found.uids = UidBook(self.home / "uids.json", s.uid_first, s.uid_last)
        self._detect_bwrap(found)
        if found.uids is not None and found.bwrap is None:
            reveal.check(s.uid_first, self.home)  # raises rather than start a daemon that fails every deploy
        if found.uids is not None:
            why = proc.hiding_works(s.uid_first)
            found.hide_processes = not why
            if why:
                found.notes.append(f"apps can see every process in /proc, the daemon's command line too ({why})")
        if s.seccomp:
            try:
                found.filter = build_filter()
            except SeccompUnavailable as exc:
                found.notes.append(f"no seccomp: {exc}")
        if s.firewall:
            self._install_firewall(found)
        return found

    def _install_firewall(self, found: Facilities) -> None:
        """Close the instance ports to the apps and to other hosts, or say in a note what that
        leaves open and how to fix it."""
        s = self.settings
        if found.uids is None:
            fix = "run roost serve as root" if not found.root else "keep separate users on"
            found.notes.append(f"{self._open_ports()} (apps share one uid; fix: {fix})")
            return
        binary = firewall.nft_binary()
        if binary is None:
            found.notes.append(f"{self._open_ports()} (nft not found; fix: apt-get install nftables)")
            return
        rules = firewall.Rules(s.uid_first, s.uid_last, s.ports, s.guarded_ports, s.closed_ports)
        if s.build_gid is not None:
            net = buildnet.resolve(s.build_endpoints, buildnet.read_resolvers())
            rules = replace(rules, build_gid=s.build_gid, build_net=net)
            if net.unresolved:
                found.notes.append(f"builds cannot reach {', '.join(net.unresolved)} (not resolved at start)")
        table = firewall.table_name(self.home)
        try:
            firewall.apply(firewall.ruleset(table, rules), [binary])
        except firewall.FirewallUnavailable as exc:
            found.notes.append(
                f"{self._open_ports()} (nft refused: {exc}; fix: modprobe nf_tables nft_fib_inet nft_reject_inet)"
            )
            return
        found.firewall = table
        found.build_net = rules.build_net if s.build_gid is not None else None

    def _open_ports(self) -> str:
        """What stays open without the firewall, for the start line."""
        if not self.settings.closed_ports:
            return OPEN_PORTS
        return f"{OPEN_PORTS}; apps can connect to the cluster's Ray ports (only Ray's token guards them)"

    def _detect_bwrap(self, found: Facilities) -> None:
        binary = shutil.which("bwrap") if self.settings.bwrap else None
        if binary is None:
            found.notes.append(
                "no bubblewrap: TMPDIR is a directory, code is not read-only (apt-get install bubblewrap)"
            )
            return
        why = bwrap.works(binary, self.settings.uid_first if found.uids is not None else None)
        if why:
            found.notes.append(f"bubblewrap cannot build a sandbox here ({why}): TMPDIR is a directory")
            return
        found.bwrap = binary
        found.bwrap_version = bwrap.version(binary) or "?"

    def cgroup_parent(self) -> str:
        """Roost's parent group for this home: two daemons (two homes) in one cgroup never
        touch each other's groups, and a restart finds exactly its own leftovers."""
        digest = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:10]
        return f"{self.settings.cgroup_parent}-{digest}"

    def sweep_leftovers(self) -> int:
        """Kill every process in the groups an earlier run of this home left, and remove the
        groups; how many groups there were. Blocking: call it in a thread, before any start."""
        groups = self.facilities.hierarchy.existing()
        for group in groups:
            with contextlib.suppress(OSError):
                group.remove()
        if groups:
            log.warning("sandbox: killed what %d cgroups of an earlier run still held", len(groups))
        return len(groups)

    def build_group(self) -> Cgroup | None:
        """The group every build subprocess of this run joins (`roost.builder.enter`), without limits
        of its own: under Roost's parent, so `sweep_leftovers` kills what a crashed run's builds
        left, as it does for instances. None without cgroups. Blocking: call it in a thread."""
        if self._build_group is None and self.has_cgroups():
            try:
                self._build_group = self.facilities.hierarchy.create(BUILD_GROUP, None)
            except OSError as exc:
                log.warning("could not create the builds' cgroup %s: %s", BUILD_GROUP, exc)
        return self._build_group

    def build_child(self, name: str, limits: GroupLimits) -> Cgroup | None:
        """A group of its own for one build, under the builds' group, with `limits`; None without
        cgroups (or when it cannot be made: logged, and the build runs without cgroup limits).
        On v2 the builds' group then holds no process itself (the "no internal processes" rule):
        with sandboxed builds every build process joins such a child. Blocking: call it in a thread."""
        parent = self.build_group()
        if parent is None:
            return None
        try:
            self.facilities.hierarchy.delegate(BUILD_GROUP)
            return self.facilities.hierarchy.create(f"{BUILD_GROUP}/{name}", limits)
        except OSError as exc:
            log.warning("could not create the build's cgroup %s: %s", name, exc)
            return None

    def release(self) -> None:
        """Remove the builds' group (killing what is left in it), Roost's (now empty) parent groups
        of this home, and its firewall table. Blocking."""
        if self._build_group is not None:
            self._build_group.remove()
            self._build_group = None
        for parent in self.facilities.hierarchy.parents.values():
            with contextlib.suppress(OSError):
                parent.rmdir()
        table, binary = self.facilities.firewall, firewall.nft_binary()
        if table is not None and binary is not None:
            try:
                firewall.apply(firewall.removal(table), [binary])
            except firewall.FirewallUnavailable as exc:
                log.warning("could not remove the firewall table inet %s: %s", table, exc)
            self.facilities.firewall = None

    def summary(self) -> str:
        """The one start-up line: "sandbox: cgroup v1 (memory, cpu, pids), bubblewrap 0.8.0, ..."."""
        f = self.facilities
        if not self.settings.enabled:
            return "sandbox: disabled; instances run as plain processes" + (
                f" ({OPEN_PORTS})" if self.settings.firewall else ""
            )
        parts = [f.hierarchy.describe()]
        if f.hierarchy.version is CgroupVersion.NONE:
            parts.append("rlimits and RSS polling instead")
        parts.append(f"bubblewrap {f.bwrap_version}" if f.bwrap else "no bubblewrap")
        parts.append(f"seccomp via libseccomp {f.filter.version}" if f.filter else "no seccomp")
        if f.uids is not None:
            parts.append(f"uids {f.uids.first}-{f.uids.last}")
        if f.hide_processes:
            parts.append("/proc shows each app its own processes")
        elif not f.root:
            parts.append(f"apps run as uid {os.geteuid()} (not root: no separate users)")
        if f.firewall is not None:
            parts.append(self._describe_firewall(f.firewall))
        if f.build_net is not None:
            parts.append(_describe_build_net(f.build_net))
        text = "sandbox: " + ", ".join(parts)
        notes = [n for n in f.notes if not n.startswith("no bubblewrap") or f.bwrap is None]
        return text + (f" ({'; '.join(notes)})" if notes else "")

    def _describe_firewall(self, table: str) -> str:
        guarded = sorted(set(self.settings.guarded_ports))
        admin = f" nor the admin API port {', '.join(map(str, guarded))}" if guarded else ""
        closed = ", ".join(sorted({r.describe() for r in self.settings.closed_ports}))
        ray = f"; apps and builds cannot reach the cluster's Ray ports {closed} on any address" if closed else ""
        return (
            f"firewall nft inet {table} (instance ports {self.settings.ports.describe()}: only the edge may connect; "
            f"apps cannot reach them{admin}{ray})"
        )

    def has_cgroups(self) -> bool:
        return self.settings.enabled and self.facilities.hierarchy.version is not CgroupVersion.NONE

    def uses_bwrap(self) -> bool:
        return self.settings.enabled and self.facilities.bwrap is not None

    # -- per app ---------------------------------------------------------------------------------------------------

    async def prepare(self, spec: DeploymentSpec) -> None:
        """Before the first process of `spec`: its app's uid, and (root without bwrap) its code
        and venv readable by that uid. Cheap once done."""
        uid = await self.app_uid(spec.app)
        if uid is not None and not self.uses_bwrap() and spec.code_dir not in self._opened:
            await asyncio.to_thread(open_for, spec.code_dir, spec.venv_dir, self.home, uid)
            self._opened.add(spec.code_dir)

    async def app_uid(self, app: str) -> int | None:
        """The app's own uid (allocated on first use), the same for its instances and its builds;
        None when apps do not get their own uids here. Raises LimitExceeded when the range is used up."""
        await self.detect()
        book = self.facilities.uids
        if book is not None and app not in self._uids:
            self._uids[app] = await asyncio.to_thread(book.uid_for, app)
        return self._uids.get(app)

    def uid_of(self, spec: DeploymentSpec) -> int | None:
        return self._uids.get(spec.app)

    # -- per process -----------------------------------------------------------------------------------------------

    def tmpdir(self, host_tmpdir: Path, instance: str, forked: bool) -> Path:
        """TMPDIR (and HOME) as the process sees it."""
        if not self.uses_bwrap():
            return host_tmpdir
        return SANDBOX_TMP / instance if forked else SANDBOX_TMP

    def cgroup(self, name: str, limits: LimitsConfig) -> Cgroup | None:
        """A new cgroup `name` with `limits`, or None without cgroups (or when it cannot be made:
        logged, and the instance runs unconfined by cgroups rather than not at all)."""
        if not self.has_cgroups():
            return None
        try:
            return self.facilities.hierarchy.create(name, GroupLimits(limits.memory, limits.cpu, limits.pids))
        except OSError as exc:
            log.warning("could not create cgroup %s: %s", name, exc)
            return None

    def confine(self, spec: DeploymentSpec, name: str, host_tmpdir: Path | None) -> Confinement | None:
        """The confinement of one spawned process (a fresh instance, a command app, a zygote or
        the build probe), with its own new cgroup; None when the sandbox is off."""
        if not self.settings.enabled:
            return None
        limits = spec.config.limits
        group = self.cgroup(name, limits)
        uid = self.uid_of(spec)
        plan = LauncherPlan(
            procs=[str(p) for p in group.procs_files()] if group else [], rlimits=self._rlimits(spec, group)
        )
        plan.seccomp = self.facilities.filter.program if self.facilities.filter else None
        plan.netns = self._launcher_netns(spec)
        plan.hide_processes = self.facilities.hide_processes
        if self.uses_bwrap():
            plan.bwrap = self.facilities.bwrap
            plan.view = self._view(spec, uid)
        else:
            plan.uid = plan.gid = uid
            if uid is not None:
                plan.reveal = reveal.paths_for(spec.code_dir, spec.venv_dir, host_tmpdir)
            if uid is not None and host_tmpdir is not None:
                os.chown(host_tmpdir, uid, uid)  # a microsecond syscall: fine on the loop
        return Confinement(plan, group)

    def _launcher_netns(self, spec: DeploymentSpec) -> bool:
        """Whether the launcher must make the private network of `network = "none"` (no bwrap,
        but root); when nothing can, say so once per deployment rather than ignore it."""
        if spec.config.limits.network is not Network.NONE:
            return False
        if binds_its_port(spec):
            self._tell_network(spec, "a command app binds $PORT itself, so it keeps the host network")
            return False
        if self.uses_bwrap():
            return False  # the bwrap view unshares the network
        if self.facilities.root:
            return True
        self._tell_network(
            spec, "without bubblewrap only root can give an instance its own network; it keeps the host network"
        )
        return False

    def _tell_network(self, spec: DeploymentSpec, why: str) -> None:
        if spec.deployment not in self._told_network:
            self._told_network.add(spec.deployment)
            log.warning('app %s (%s) asks for limits.network = "none": %s', spec.app, spec.deployment, why)

    def _view(self, spec: DeploymentSpec, uid: int | None) -> bwrap.View:
        read_only = [spec.venv_dir, reveal.RUNNER]
        prefix = bwrap.interpreter_prefix(spec.venv_dir)
        if prefix is not None:
            read_only.append(prefix)
        # network = "none" needs the socket handed in: a command app binds $PORT itself, so it keeps the host's
        network_none = spec.config.limits.network is Network.NONE and not binds_its_port(spec)
        return bwrap.View(
            code_dir=spec.code_dir,
            read_only=tuple(read_only),
            tmp_size=spec.config.limits.tmp,
            network_none=network_none,
            uid=uid,
            gid=uid,
        )

    def _rlimits(self, spec: DeploymentSpec, group: Cgroup | None) -> list[tuple[int, int, int]]:
        """No core files ever; without cgroups, what rlimits can stand in for (RLIMIT_NPROC counts
        per uid, so only with the app's own uid, for all its instances; RLIMIT_AS counts reserved
        address space, not memory, so memory is polled instead)."""
        limits: list[tuple[int, int, int]] = [(resource.RLIMIT_CORE, 0, 0)]
        if group is None:
            if self.uid_of(spec) is not None:
                nproc = spec.config.limits.pids * (spec.config.scale.max + 1)
                limits.append((resource.RLIMIT_NPROC, nproc, nproc))
            if not self.uses_bwrap():
                size = spec.config.limits.tmp
                limits.append((resource.RLIMIT_FSIZE, size, size))
        return limits


def binds_its_port(spec: DeploymentSpec) -> bool:
    """A command app's web instance binds $PORT itself (so it keeps the host network); a process
    type's instance (a worker) takes no connections, so `network = "none"` applies to it."""
    return bool(spec.config.command) and spec.process is None


def _describe_build_net(net: buildnet.BuildNet) -> str:
    """ "builds reach only DNS (10.0.0.53) and 203.0.113.80/32:443 (widen: --build-allow)"."""
    reached = ", ".join(f"{d.network}:{d.port or '*'}" for d in net.destinations) or "nothing else"
    dns = ", ".join(net.resolvers) or "none"
    return f"builds reach only DNS ({dns}) and {reached} (widen: --build-allow)"
