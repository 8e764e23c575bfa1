"""The sandbox around every instance and zygote: cgroups (memory, CPU, pids), a bubblewrap
filesystem view (read-only code, private /tmp, nothing else of $ROOST_HOME), an unprivileged
uid per app when root, PR_SET_NO_NEW_PRIVS and a seccomp deny-list. Each piece is detected
at start and falls back, said once, when the host lacks it. Never decides when to start or
stop an instance: the supervisor does, and asks here how to confine it.
"""

from roost.runtime.sandbox.buildjail import UNCONFINED_BUILDS, SandboxedBuild, SandboxedBuilds
from roost.runtime.sandbox.cgroup import Cgroup, GroupLimits
from roost.runtime.sandbox.cgroup_hierarchy import CgroupVersion, Hierarchy, detect, own_paths
from roost.runtime.sandbox.confine import Confinement
from roost.runtime.sandbox.limit_checks import CpuSamples, megabytes, over_budget, over_memory, tree_cpu, tree_rss
from roost.runtime.sandbox.sandbox import Sandbox
from roost.runtime.sandbox.sandbox_settings import BuildLimits, SandboxSettings
from roost.runtime.sandbox.seccomp import DENIED, Filter, build_filter
from roost.runtime.sandbox.uids import build_gid

__all__ = [
    "DENIED",
    "UNCONFINED_BUILDS",
    "BuildLimits",
    "Cgroup",
    "CgroupVersion",
    "Confinement",
    "CpuSamples",
    "Filter",
    "GroupLimits",
    "Hierarchy",
    "Sandbox",
    "SandboxSettings",
    "SandboxedBuild",
    "SandboxedBuilds",
    "build_filter",
    "build_gid",
    "detect",
    "megabytes",
    "over_budget",
    "over_memory",
    "own_paths",
    "tree_cpu",
    "tree_rss",
]
