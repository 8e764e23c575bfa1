"""Quotas per owner: caps on the instances and memory of an app or a group of apps. Pure.

A quota names its apps by a name or a glob pattern (`shop-*`) and caps the group's instance
count and the sum of its instances' memory limits. Everything here is a value or a function of
its arguments; the autoscaler, the control plane and the CLI share these rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from roost.errors import UsageError
from roost.model import Quota
from roost.units import format_size

PATTERN_RULE = "an app name or a glob of letters, digits, '-', '*', '?' and [ranges] (e.g. shop-*)"
# The admin API's schema carries the same pattern (roost/api/params.py).
QUOTA_PATTERN = r"^[a-z0-9*?\[\]!-]{1,64}$"
PATTERN_RE = re.compile(QUOTA_PATTERN)


def say_instances(count: int) -> str:
    """`1 instance`, `4 instances`."""
    return f"{count} instance" if count == 1 else f"{count} instances"


def covers(quota: Quota, app: str) -> bool:
    return fnmatchcase(app, quota.pattern)


def describe(quota: Quota) -> str:
    """`4 instances, 2G memory`."""
    caps = [say_instances(quota.instances) if quota.instances is not None else ""]
    caps.append(f"{format_size(quota.memory)} memory" if quota.memory is not None else "")
    return ", ".join(cap for cap in caps if cap) or "no cap"


@dataclass(frozen=True, slots=True)
class Holding:
    """What a group of apps holds now: instances and the sum of their memory limits."""

    instances: int = 0
    memory: int = 0

    def plus(self, instances: int, memory_each: int) -> Holding:
        return Holding(self.instances + instances, self.memory + instances * memory_each)


@dataclass(frozen=True, slots=True)
class Cap:
    """What a quota leaves one deployment: at most `instances` (its own current ones included).

    `others` is what the rest of the group holds, for the event that says how full the quota is."""

    quota: Quota
    instances: int
    memory_each: int
    others: Holding

    def reached(self, wanted: int) -> str:
        """`quota "shop-*" reached: 4 of 4 instances (wanted 6)`, in the unit that binds."""
        q = self.quota
        held = self.others.plus(self.instances, self.memory_each)
        want = self.others.plus(wanted, self.memory_each)
        if q.instances is not None and want.instances > q.instances:
            said = f"{held.instances} of {say_instances(q.instances)} (wanted {want.instances})"
        else:
            limit = q.memory or 0
            said = f"{format_size(held.memory)} of {format_size(limit)} memory (wanted {format_size(want.memory)})"
        return f'quota "{q.pattern}" reached: {said}'


def check_pattern(pattern: str) -> str:
    """The pattern, if it is one; raises UsageError."""
    if not PATTERN_RE.fullmatch(pattern):
        raise UsageError(f"'{pattern}' is not a valid quota pattern", hint=f"a quota names {PATTERN_RULE}")
    return pattern


def check_quota(quota: Quota) -> Quota:
    """The quota, if its caps make sense; raises UsageError."""
    check_pattern(quota.pattern)
    if quota.instances is None and quota.memory is None:
        raise UsageError("a quota needs a cap", hint="give --instances N, --memory SIZE, or both")
    if quota.instances is not None and quota.instances < 1:
        raise UsageError("a quota allows at least 1 instance", hint="stop the apps instead: roost stop APP")
    if quota.memory is not None and quota.memory < 1024 * 1024:
        raise UsageError("a quota allows at least 1M of memory", hint="give --memory like 512M or 2G")
    return quota


def quotas_of(quotas: Iterable[Quota], app: str) -> list[Quota]:
    """The quotas that cover `app` (an app may be in several groups; every one applies)."""
    return [quota for quota in quotas if covers(quota, app)]


def group_usage(quota: Quota, held: Mapping[str, Holding]) -> Holding:
    """What the apps covered by `quota` hold, from each app's usage."""
    total = Holding()
    for app, usage in held.items():
        if covers(quota, app):
            total = Holding(total.instances + usage.instances, total.memory + usage.memory)
    return total


def cap_for(quotas: Iterable[Quota], app: str, memory_each: int, others: Mapping[str, Holding]) -> Cap | None:
    """The tightest cap the quotas covering `app` put on one of its deployments, given what the
    rest of each group holds (`others`: per app, this deployment left out). None: no quota.

    >>> q = Quota("shop-*", instances=4)
    >>> cap_for([q], "shop-a", 128 << 20, {"shop-b": Holding(1, 128 << 20)}).instances
    3
    """
    tightest: Cap | None = None
    for quota in quotas_of(quotas, app):
        rest = group_usage(quota, others)
        room = [quota.instances - rest.instances] if quota.instances is not None else []
        if quota.memory is not None:
            room.append((quota.memory - rest.memory) // max(1, memory_each))
        cap = Cap(quota, max(0, min(room)), memory_each, rest)
        if tightest is None or cap.instances < tightest.instances:
            tightest = cap
    return tightest


def most_instances(quotas: Iterable[Quota], app: str, memory_each: int) -> int | None:
    """The most instances the quotas let `app` run alone (for `scale.max` and `roost scale`)."""
    cap = cap_for(quotas, app, memory_each, {})
    return cap.instances if cap is not None else None
