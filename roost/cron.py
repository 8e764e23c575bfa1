"""Cron jobs: a pure `next_run` and the thin loop that fires jobs on time.

The runner never sends HTTP itself: it is handed a `send` that goes through
the edge's normal request path (so a sleeping function wakes) to the app's
production deployment, the heaviest in its traffic, never the other side of
an A/B split (`Edge.internal_request`). A job never overlaps itself. `speed`
> 1 makes scheduling time run faster (for tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from croniter import croniter

from roost.model import CronJob
from roost.tasks import TaskSet

log = logging.getLogger("roost.cron")
Send = Callable[[str, CronJob], Awaitable[tuple[int, str]]]  # the app's HTTP status, and X-Roost-Start
Record = Callable[[str, str, str, dict[str, object]], Awaitable[None]]


def next_run(schedule: str, after: float) -> float:
    """The first time strictly after `after` (a UTC timestamp) that `schedule` names."""
    return float(croniter(schedule, datetime.fromtimestamp(after, UTC)).get_next(float))


@dataclass(slots=True)
class JobState:
    app: str
    job: CronJob
    next_at: float
    running: bool = False
    last_at: float | None = None
    last_status: int | None = None
    last_seconds: float | None = None
    last_error: str = ""


class CronRunner:
    def __init__(self, send: Send, record: Record, speed: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self._send = send
        self._record = record
        self._speed = speed
        self._clock = clock
        self._origin = clock()
        self._jobs: dict[tuple[str, str], JobState] = {}
        self._changed = asyncio.Event()
        self._tasks = TaskSet(log, "cron task")

    def now(self) -> float:
        """Scheduling time: wall time, or faster by `speed`."""
        real = self._clock()
        return self._origin + (real - self._origin) * self._speed

    def set_jobs(self, jobs: Mapping[str, tuple[CronJob, ...]]) -> None:
        """Replace the schedule: app -> its production jobs. Unchanged jobs keep their state."""
        now = self.now()
        fresh: dict[tuple[str, str], JobState] = {}
        for app, app_jobs in jobs.items():
            for job in app_jobs:
                key = (app, job.name)
                old = self._jobs.get(key)
                if old is not None and old.job == job:
                    fresh[key] = old
                else:
                    fresh[key] = JobState(app, job, next_run(job.schedule, now))
        self._jobs = fresh
        self._changed.set()

    def wall_time(self, at: float) -> float:
        """When scheduling time `at` comes, in wall time (they differ only with a faster clock)."""
        real = self._clock()
        return real + (at - self.now()) / self._speed

    def status(self, app: str) -> list[JobState]:
        return sorted((s for s in self._jobs.values() if s.app == app), key=lambda s: s.job.name)

    async def run(self) -> None:
        """Fire due jobs until cancelled."""
        while True:
            self._changed.clear()
            now = self.now()
            for state in list(self._jobs.values()):
                if state.next_at <= now:
                    state.next_at = next_run(state.job.schedule, now)
                    self._fire(state)
            wait = self._seconds_until_next()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=wait)

    def _seconds_until_next(self) -> float:
        if not self._jobs:
            return 3600.0
        soonest = min(s.next_at for s in self._jobs.values())
        return max(0.01, (soonest - self.now()) / self._speed)

    def _fire(self, state: JobState) -> None:
        if state.running:
            self._later(
                self._record(
                    state.app, "cron.skipped", f"cron job {state.job.name} skipped: the previous run is still going", {}
                )
            )
            return
        state.running = True
        self._tasks.start(self._run_one(state), name=f"run {state.app}/{state.job.name}")

    async def _run_one(self, state: JobState) -> None:
        started = time.monotonic()
        try:
            status, start = await self._send(state.app, state.job)
            state.last_error = ""
        except Exception as exc:  # noqa: BLE001 - a failed run is recorded, never fatal to the runner
            status, start, state.last_error = 0, "", str(exc) or type(exc).__name__
        finally:
            state.running = False
        seconds = time.monotonic() - started
        state.last_at, state.last_status, state.last_seconds = time.time(), status, seconds
        ok = 200 <= status < 400
        result = f"HTTP {status}" if status else f"error: {state.last_error}"
        await self._record(
            state.app,
            "cron.run" if ok else "cron.failed",
            f"cron job {state.job.name} POST {state.job.path}: {result} in {seconds * 1000:.0f}ms",
            {"job": state.job.name, "status": status, "seconds": seconds, "start": start},
        )

    def _later(self, work: Awaitable[None]) -> None:
        async def wrapper() -> None:
            await work

        self._tasks.start(wrapper(), name="record a cron event")

    async def close(self) -> None:
        await self._tasks.cancel_all()
