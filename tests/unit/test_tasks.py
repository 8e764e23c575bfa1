import asyncio
import logging

import pytest

from roost.tasks import TaskSet

log = logging.getLogger("roost.test_tasks")


async def test_a_task_is_kept_until_it_ends() -> None:
    tasks = TaskSet(log, "test task")
    release = asyncio.Event()
    tasks.start(release.wait(), name="waiter")
    assert [task.get_name() for task in tasks] == ["waiter"]
    release.set()
    await tasks.wait_all()
    assert len(tasks) == 0


async def test_a_crash_is_logged_with_the_task_name(caplog: pytest.LogCaptureFixture) -> None:
    async def crash() -> None:
        raise RuntimeError("disk on fire")

    tasks = TaskSet(log, "test task")
    with caplog.at_level(logging.ERROR, logger=log.name):
        tasks.start(crash(), name="burner")
        await tasks.wait_all()
    assert [record.getMessage() for record in caplog.records] == [
        "test task burner failed: RuntimeError('disk on fire')"
    ]
    assert len(tasks) == 0


async def test_cancel_all_cancels_and_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskSet(log, "test task")
    never = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger=log.name):
        tasks.start(never.wait(), name="one")
        tasks.start(never.wait(), name="two")
        running = list(tasks)
        await tasks.cancel_all()
    assert all(task.cancelled() for task in running)
    assert len(tasks) == 0
    assert caplog.records == []


async def test_wait_all_waits_for_tasks_started_by_tasks() -> None:
    tasks = TaskSet(log, "test task")
    done: list[str] = []

    async def second() -> None:
        done.append("second")

    async def first() -> None:
        tasks.start(second(), name="second")
        done.append("first")

    tasks.start(first(), name="first")
    await tasks.wait_all()
    assert done == ["first", "second"]
