"""Background tasks kept until they end, their crashes logged: the one home of keep-a-task-and-log-its-crash.

A leaf: imports nothing of Roost. Never swallows CancelledError (a cancelled task is not a crash).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any


class TaskSet:
    """Tasks started with `start`, each handle kept until the task ends (asyncio keeps only a weak
    reference); a task that raises is logged on `logger` as "<what> <task name> failed".

    Example::

        tasks = TaskSet(log, "runtime task")
        tasks.start(asyncio.to_thread(shutil.rmtree, path), name=f"rmtree {path.name}")
        ...
        await tasks.cancel_all()  # at shutdown
    """

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any], name: str | None = None) -> None:
        """Start `work` on the running loop; its handle is kept until it ends. (Not `spawn`: in
        Roost that verb creates a process.)"""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self._logger.error("%s %s failed: %r", self._what, task.get_name(), error, exc_info=error)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        """The tasks running now (a copy: iterating while tasks end is safe)."""
        return iter(list(self._tasks))

    async def wait_all(self) -> None:
        """Wait until no task is left, including tasks the waited-for ones started."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Cancel every task and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
