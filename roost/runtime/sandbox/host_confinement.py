"""How one machine's daemon confines what it runs: the settings `roost serve` and `roost node join`
both turn into the runtime's `SandboxSettings` and the builder's jails, written once here.

Decides nothing about when to start or stop anything; only what the sandbox and the builds get.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from roost.runtime.ports import PortRange
from roost.runtime.sandbox.buildjail import UNCONFINED_BUILDS, SandboxedBuilds
from roost.runtime.sandbox.buildnet import index_endpoints, parse_allow_flags
from roost.runtime.sandbox.sandbox import Sandbox
from roost.runtime.sandbox.sandbox_settings import BuildLimits, SandboxSettings
from roost.runtime.sandbox.uids import build_gid
from roost.units import format_duration

log = logging.getLogger("roost.sandbox")


def _all_cores() -> float:
    return float(os.cpu_count() or 1)  # uv and compileall work in parallel; a 1-core cap doubled build times


@dataclass(frozen=True, slots=True)
class HostConfinement:
    """The daemon's confinement settings (`roost serve`'s flags; a node takes these defaults, which
    are `roost serve`'s). `guarded_ports`: local TCP ports no app may reach (the admin API's).

    Example (the daemon)::

        confinement = HostConfinement(uid_first=300000, uid_last=365535, guarded_ports=(api_port,))
        runtime = LocalRuntime(home, logs, events, sandbox=confinement.sandbox_settings(os.environ))
        jails = build_jails(runtime.sandbox, confinement, timeout_build)
    """

    uid_first: int = 200000
    uid_last: int = 265535
    ports: PortRange = field(default_factory=PortRange)
    firewall: bool = True
    guarded_ports: tuple[int, ...] = ()
    closed_ports: tuple[PortRange, ...] = ()  # ports no app may reach on any address (a cluster's Ray)
    build_allow: tuple[str, ...] = ()  # HOST[:PORT] builds may reach besides the package index
    build_sandbox: bool = True
    build_memory: int = 2 * 1024**3
    build_cpu: float = field(default_factory=_all_cores)
    build_pids: int = 512

    def sandbox_settings(self, environ: Mapping[str, str]) -> SandboxSettings:
        """The runtime's sandbox; `environ` names the package index builds may reach (UV_INDEX_URL, ...).
        Raises ValueError for a malformed `build_allow` entry."""
        return SandboxSettings(
            uid_first=self.uid_first,
            uid_last=self.uid_last,
            ports=self.ports,
            firewall=self.firewall,
            guarded_ports=self.guarded_ports,
            closed_ports=self.closed_ports,
            build_gid=build_gid(self.uid_first),
            build_endpoints=(*index_endpoints(environ), *parse_allow_flags(self.build_allow)),
        )

    def build_limits(self) -> BuildLimits:
        return BuildLimits(memory=self.build_memory, cpu=self.build_cpu, pids=self.build_pids)


def build_jails(sandbox: Sandbox, confinement: HostConfinement, timeout_build: float) -> SandboxedBuilds | None:
    """Each build's jail (the app's uid, bubblewrap, seccomp, the build limits), with the start-up
    line saying what builds get and what they do not; None when builds are not sandboxed."""
    if not confinement.build_sandbox:
        log.warning("%s", UNCONFINED_BUILDS)
        return None
    jails = SandboxedBuilds(sandbox, confinement.build_limits())
    log.info("%s, at most %s", jails.describe(), format_duration(timeout_build))
    return jails


def unjailed_build_procs(sandbox: Sandbox, jails: SandboxedBuilds | None) -> tuple[str, ...]:
    """The cgroup files an unjailed build subprocess joins (the builds' group), so a restart kills
    what a crashed run's builds left; () when builds are jailed (each joins a group of its own under
    the builds' group, which then holds no process) or without cgroups. Blocking: call it in a
    thread, after the runtime's start (its sweep of a crashed run's groups)."""
    group = sandbox.build_group()
    if group is None or jails is not None:
        return ()
    return tuple(str(path) for path in group.procs_files())
