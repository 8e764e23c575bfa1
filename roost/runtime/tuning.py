"""The local runtime's settings: grace periods, timeouts, zygote eviction, back-off and the
host's memory budget. A leaf: plain values, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass, field

from roost.runtime.backoff import Backoff


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    grace_drain: float = 10.0  # in-flight requests may finish within this, then TERM
    grace_kill: float = 5.0  # after TERM, then KILL
    zygote_idle: float = 1800.0  # a zygote without a fork this long (and no live instance) is evicted
    idle_check_interval: float = 1.0  # the sweep: zygote eviction, crash-loop expiry
    timeout_start: float = 60.0  # a fresh instance or a zygote must be ready within this
    backoff: Backoff = field(default_factory=Backoff)
    memory_budget: int = 0  # bytes of instance memory limits the host allows in all; 0: no budget
