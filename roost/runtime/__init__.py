"""The runtime: starts, watches and stops instances of deployments (see DESIGN.md).

Others use `LocalRuntime` (the daemon wires it) and the protocol types; the edge,
the autoscaler and the control plane import only `roost.runtime.protocol`. Nothing
here imports more of Roost than the leaves and `roost.applog`.
"""

from roost.runtime.isolation import Isolation
from roost.runtime.protocol import (
    RUNNER_REQUIREMENTS,
    DeploymentSpec,
    DeploymentStats,
    EventSink,
    InstanceInfo,
    ProbeResult,
    Runtime,
    RuntimeListener,
    Slot,
    StartKind,
)
from roost.runtime.strays import kill_strays
from roost.runtime.supervisor import LocalRuntime

__all__ = [
    "RUNNER_REQUIREMENTS",
    "DeploymentSpec",
    "DeploymentStats",
    "EventSink",
    "InstanceInfo",
    "Isolation",
    "LocalRuntime",
    "ProbeResult",
    "Runtime",
    "RuntimeListener",
    "Slot",
    "StartKind",
    "kill_strays",
]
