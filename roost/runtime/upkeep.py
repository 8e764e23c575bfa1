"""What the parts of the local runtime share besides their settings: the folder of instances'
temporary directories, the background tasks (each handle kept until it ends, a crash logged)
and whether the runtime is closing. Cleanup that may block (rmtree, a cgroup's removal) runs
in a thread from here, never on the loop."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from roost.runtime.sandbox import Cgroup
from roost.tasks import TaskSet

log = logging.getLogger("roost.runtime")


class Upkeep:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.closing = False  # set once by LocalRuntime.close(): nothing new starts from then on
        self._tasks = TaskSet(log, "runtime task")

    def keep_task(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        """A background task whose handle is kept until it ends; `finish` waits for what is left."""
        self._tasks.start(work, name=name)

    async def finish(self, grace: float) -> None:
        """Wait up to `grace` seconds for the background tasks, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(list(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    def tmpdir(self, name: str) -> Path:
        return self.home / "run" / "tmp" / name

    def remove_tmpdir(self, path: Path) -> None:
        """Wipe an instance's TMPDIR in a thread (it may hold many files)."""
        self.keep_task(asyncio.to_thread(shutil.rmtree, path, True), name=f"rmtree {path.name}")

    def remove_cgroup(self, group: Cgroup | None) -> None:
        """Kill whatever is left in the group (a grandchild that left the process group) and
        remove it, in a thread: it waits for the processes to die."""
        if group is not None:
            self.keep_task(asyncio.to_thread(group.remove), name=f"remove cgroup {group.name}")
