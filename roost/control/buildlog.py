"""Live build logs: the lines a build prints, for the push that follows them.

While a build runs its lines are kept in memory for followers; when it ends
they are written to `build.log` in the deployment's directory, where later
readers find them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from roost.applog import LogBook
from roost.errors import is_no_space
from roost.model import AppName, DeploymentId

LIMIT_LINES = 5000
logger = logging.getLogger("roost.control")


class BuildLog:
    """One running build's lines and the followers waiting for more."""

    def __init__(self, app: AppName, deployment: DeploymentId, path: Path, logs: LogBook) -> None:
        self.app = app
        self.deployment = deployment
        self.path = path
        self.lines: list[str] = []
        self.done = False
        self._logs = logs
        self._changed = asyncio.Event()

    def line(self, text: str) -> None:
        """Record one line (called on the loop by the builder and the build check). On a full
        disk the line still reaches the followers (`roost push`), only the app's log misses it."""
        for part in text.rstrip("\n").split("\n"):
            if len(self.lines) < LIMIT_LINES:
                self.lines.append(part)
            try:
                self._logs.write(self.app, self.deployment, "build", part)
            except OSError as exc:
                if not is_no_space(exc):
                    raise
        self._wake()

    def _wake(self) -> None:
        """Release every follower waiting now; later waiters wait on a fresh event."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def finish(self) -> None:
        """Save the lines and release the followers, who are released even when a full disk
        keeps `build.log` from being written (they have every line already)."""
        text = "\n".join(self.lines) + "\n"
        try:
            await asyncio.to_thread(self._save, text)
        except OSError as exc:
            if not is_no_space(exc):
                raise
            logger.warning("build log of %s not saved: %s", self.deployment, exc)
        finally:
            self.done = True
            self._wake()

    def _save(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(text)

    async def follow(self) -> AsyncIterator[str]:
        """Every line from the first, then new ones until the build ends."""
        sent = 0
        while True:
            while sent < len(self.lines):
                yield self.lines[sent]
                sent += 1
            if self.done:
                return
            await self._changed.wait()


class BuildLogs:
    """The builds running now, by deployment; finished ones are read from disk."""

    def __init__(self, logs: LogBook, root: Path) -> None:
        self._logs = logs
        self._root = root
        self._running: dict[DeploymentId, BuildLog] = {}

    def path(self, app: str, deployment: str) -> Path:
        return self._root / app / deployment / "build.log"

    def open(self, app: AppName, deployment: DeploymentId) -> BuildLog:
        log = BuildLog(app, deployment, self.path(app, deployment), self._logs)
        self._running[deployment] = log
        return log

    async def close(self, log: BuildLog) -> None:
        await log.finish()
        self._running.pop(log.deployment, None)

    async def follow(self, app: str, deployment: str) -> AsyncIterator[str]:
        running = self._running.get(DeploymentId(deployment))
        if running is not None:
            async for line in running.follow():
                yield line
            return
        path = self.path(app, deployment)
        text = await asyncio.to_thread(lambda: path.read_text() if path.exists() else "")
        for line in text.splitlines():
            yield line
