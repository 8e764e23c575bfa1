"""Liveness: every ready instance of an app with a `[check]` is checked once per `interval`;
`failures` failed checks in a row restart it (drained and stopped, a replacement started),
with an event that names the check and how it failed.

Only ready instances are checked: a sleeping function has none, so a check never wakes an app,
and since a check bypasses the edge and takes no slot it never keeps one awake (see
runtime/healthcheck.py). Never blocks the sweep: each check is its own kept task.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from roost.model import HealthCheck
from roost.runtime.healthcheck import CheckOutcome, check_once
from roost.runtime.instance import Instance
from roost.runtime.keeper import InstanceKeeper
from roost.runtime.notify import Notifier
from roost.runtime.pool import Pool
from roost.runtime.upkeep import Upkeep


@dataclass(slots=True)
class CheckRecord:
    """One instance's liveness so far: when its next check is due and its failures in a row."""

    due: float
    failed: int = 0
    running: bool = False
    last: str = ""

    def is_due(self, now: float) -> bool:
        return not self.running and now >= self.due

    def record(self, ok: bool, detail: str, now: float, check: HealthCheck) -> bool:
        """Count one outcome; True when the instance has now failed `check.failures` in a row."""
        self.running = False
        self.due = now + check.interval
        self.failed = 0 if ok else self.failed + 1
        self.last = detail
        return self.failed >= check.failures


class LivenessWatcher:
    """Called by the runtime's sweep; restarts through the instance keeper."""

    def __init__(self, notifier: Notifier, upkeep: Upkeep, keeper: InstanceKeeper) -> None:
        self._notifier = notifier
        self._upkeep = upkeep
        self._keeper = keeper
        self._records: dict[str, CheckRecord] = {}

    def police(self, pools: Iterable[Pool], now: float) -> None:
        """Start the checks that are due; forget instances that are no longer ready."""
        if self._upkeep.closing:
            return
        ready: set[str] = set()
        for pool in list(pools):
            check = pool.spec.config.check
            if check is None:
                continue
            for instance in pool.ready():
                ready.add(instance.id)
                self._maybe_check(pool, instance, check, now)
        for gone in set(self._records) - ready:
            if not self._records[gone].running:
                del self._records[gone]

    def _maybe_check(self, pool: Pool, instance: Instance, check: HealthCheck, now: float) -> None:
        ready_at = instance.ready_at if instance.ready_at is not None else now
        record = self._records.setdefault(instance.id, CheckRecord(due=ready_at + check.interval))
        if record.is_due(now):
            record.running = True
            self._upkeep.keep_task(self._check(pool, instance, check, record), name=f"check {instance.id}")

    async def _check(self, pool: Pool, instance: Instance, check: HealthCheck, record: CheckRecord) -> None:
        try:
            outcome = await check_once(instance.host, instance.port, check, check.timeout)
        finally:
            record.running = False  # even cancelled: the next sweep may ask again
        if not instance.is_ready():
            return  # it left while we asked: its end is recorded elsewhere
        if record.record(outcome.ok, outcome.detail, time.monotonic(), check):
            self._restart(pool, instance, check, outcome)

    def _restart(self, pool: Pool, instance: Instance, check: HealthCheck, outcome: CheckOutcome) -> None:
        reason = f"failed its health check {check.failures} time(s) in a row: {outcome.detail}"
        self._notifier.event(
            instance.spec.app,
            "instance.unhealthy",
            f"instance {instance.id} {reason}; restarting it",
            deployment=pool.deployment,
            instance=instance.id,
            check=check.path,
            failures=check.failures,
            detail=outcome.detail,
            status=outcome.status,
        )
        live_before = len(pool.live())
        if not instance.is_live():
            return
        self._keeper.count_failure(pool, instance, f"unhealthy: {reason}")  # a sick app backs off like a crashing one
        if not self._keeper.begin_stop(pool, instance, f"unhealthy: {reason}"):
            return
        self._upkeep.keep_task(self._keeper.complete_stop(instance), name=f"restart {instance.id}")
        if len(pool.live()) < live_before and pool.backoff_until <= time.monotonic():
            self._keeper.start(pool)  # the floor did not replace it (a function): start one, unless backing off
        self._records.pop(instance.id, None)
