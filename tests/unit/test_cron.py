"""Cron scheduling: the pure next_run, and the runner's no-overlap rule with a fast clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from roost.cron import CronRunner, next_run
from roost.model import CronJob


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_next_run_is_strictly_after_and_in_utc() -> None:
    assert next_run("0 3 * * *", at("2026-11-22T02:59:59")) == at("2026-11-22T03:00:00")
    assert next_run("0 3 * * *", at("2026-11-22T03:00:00")) == at("2026-11-23T03:00:00")
    assert next_run("*/15 * * * *", at("2026-11-22T10:07:00")) == at("2026-11-22T10:15:00")


async def test_a_slow_job_does_not_overlap_itself() -> None:
    """Every minute at 600x: a tick each 0.1 s; each run takes 0.35 s, so runs must be skipped."""
    job = CronJob("slow", "* * * * *", "/slow")
    running = 0
    most = 0
    events: list[tuple[str, dict[str, object]]] = []

    async def send(app: str, sent: CronJob) -> tuple[int, str]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.35)
        running -= 1
        return 200, "hot"

    async def record(app: str, kind: str, message: str, data: dict[str, object]) -> None:
        events.append((kind, data))

    runner = CronRunner(send, record, speed=600)
    runner.set_jobs({"app": (job,)})
    loop = asyncio.create_task(runner.run())
    try:
        while sum(1 for kind, _ in events if kind == "cron.run") < 2:
            await asyncio.sleep(0.05)
    finally:
        loop.cancel()
        await runner.close()
    assert most == 1
    assert any(kind == "cron.skipped" for kind, _ in events)
    ran = [data for kind, data in events if kind == "cron.run"]
    assert ran[0]["status"] == 200 and ran[0]["start"] == "hot"
    state = runner.status("app")[0]
    assert state.last_status == 200


async def test_a_failed_send_is_recorded_not_raised() -> None:
    events: list[tuple[str, str]] = []

    async def send(app: str, sent: CronJob) -> tuple[int, str]:
        raise ConnectionError("edge closed")

    async def record(app: str, kind: str, message: str, data: dict[str, object]) -> None:
        events.append((kind, message))

    runner = CronRunner(send, record, speed=600)
    runner.set_jobs({"app": (CronJob("boom", "* * * * *", "/boom"),)})
    loop = asyncio.create_task(runner.run())
    try:
        while not events:
            await asyncio.sleep(0.05)
    finally:
        loop.cancel()
        await runner.close()
    assert events[0][0] == "cron.failed"
    assert "edge closed" in events[0][1]
