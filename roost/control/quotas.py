"""Quota use cases: set, list and remove quotas, and what each group holds now.

A quota change reconciles the apps it covers: their production specs carry a `scale.max` (and
`min`) no higher than the quota lets one app run alone, so the runtime's own starts for waiting
requests stay within it; the autoscaler caps the group as a whole (roost/autoscale.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from roost.control.usage import LIVE
from roost.model import AppName, Quota
from roost.quotas import Holding, check_quota, covers, describe, group_usage, say_instances
from roost.runtime.protocol import Runtime
from roost.store import Store
from roost.units import format_size

Reconcile = Callable[[AppName], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class QuotaState:
    """A quota and what the apps it covers hold now (live instances, their memory limits)."""

    quota: Quota
    usage: Holding
    apps: tuple[str, ...]

    def describe_usage(self) -> str:
        """`3 of 4 instances, 384M of 2G memory`."""
        q, u = self.quota, self.usage
        parts = [f"{u.instances} of {say_instances(q.instances)}" if q.instances is not None else ""]
        parts.append(
            f"{format_size(u.memory) if u.memory else '0'} of {format_size(q.memory)} memory" if q.memory else ""
        )
        return ", ".join(p for p in parts if p)


class QuotaUseCases:
    """Quotas over one store and runtime; `reconcile` brings an app's instances in line."""

    def __init__(self, store: Store, runtime: Runtime, reconcile: Reconcile) -> None:
        self.store = store
        self.runtime = runtime
        self._reconcile = reconcile

    async def set_quota(self, pattern: str, instances: int | None, memory: int | None) -> Quota:
        """Create or replace the quota of `pattern`. Raises UsageError for a bad pattern or cap."""
        quota = check_quota(Quota(pattern, instances, memory))
        await self.store.quotas.set_quota(quota)
        await self.store.add_event(
            None,
            "quota.set",
            f'quota "{pattern}": {describe(quota)}',
            {"pattern": pattern, "instances": instances, "memory": memory},
        )
        await self._reconcile_covered(quota)
        return quota

    async def remove_quota(self, pattern: str) -> None:
        """Forget the quota of `pattern`; raises NotFound."""
        await self.store.quotas.remove_quota(pattern)
        await self.store.add_event(None, "quota.removed", f'quota "{pattern}" removed', {"pattern": pattern})
        await self._reconcile_covered(Quota(pattern))

    async def quota_states(self, app: str | None = None) -> list[QuotaState]:
        """Every quota (or those covering `app`) with what its apps hold now."""
        quotas = [q for q in await self.store.quotas.list_quotas() if app is None or covers(q, app)]
        if not quotas:
            return []
        held = await self.held()
        apps = [a.name for a in await self.store.list_apps()]
        return [QuotaState(q, group_usage(q, held), tuple(name for name in apps if covers(q, name))) for q in quotas]

    async def held(self) -> dict[str, Holding]:
        """Per app: its live instances and the sum of their memory limits."""
        memory = {d.id: d.config.limits.memory for d in await self.store.list_deployments()}
        held: dict[str, Holding] = {}
        for instance in self.runtime.instances():
            if instance.state in LIVE:
                held[instance.app] = held.get(instance.app, Holding()).plus(1, memory.get(instance.deployment, 0))
        return held

    async def _reconcile_covered(self, quota: Quota) -> None:
        for app in await self.store.list_apps():
            if covers(quota, app.name):
                await self._reconcile(app.name)
