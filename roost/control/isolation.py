"""What was enforced: each build step's isolation, read back from its running process through the
runtime and kept as a `build.isolation` event of its deployment, for `roost info`. Never changes
how a build runs: it only watches the steps the builder starts (roost.builder.process.STEP_WATCHER).
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from roost.builder.process import STEP_WATCHER
from roost.model import AppName, DeploymentId
from roost.runtime.protocol import Runtime
from roost.runtime.protocol import describe_isolation as describe
from roost.store import Store

BUILD_ISOLATION = "build.isolation"
LIMIT_STEP_WORDS = 3  # "uv pip install", "python -m compileall"


class Starter(Protocol):
    def __call__(self, work: Coroutine[Any, Any, Any], name: str) -> None: ...


def step_name(argv: Sequence[str]) -> str:
    """A build step in a few words: its program's name and the first arguments that are not paths.

    >>> step_name(["/srv/uv", "pip", "install", "--python", "/v/bin/python", "-r", "req.txt"])
    'uv pip install'
    """
    words = [Path(argv[0]).name] if argv else []
    for arg in argv[1:]:
        if len(words) >= LIMIT_STEP_WORDS or "/" in arg or (arg.startswith("-") and arg != "-m"):
            break
        words.append(arg)
    return " ".join(words)


class BuildWatch:
    """Reads back each distinct step of one deployment's build once, and records what it got.

    Example (the deploy use case)::

        with BuildWatch(runtime, store, tasks.start, app, deployment, build_dir).watching():
            await builder.build(request, log)
    """

    def __init__(
        self, runtime: Runtime, store: Store, start: Starter, app: AppName, deployment: DeploymentId, build_dir: Path
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.start = start
        self.app = app
        self.deployment = deployment
        self.build_dir = build_dir
        self._seen: set[str] = set()

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        token = STEP_WATCHER.set(self.started)
        try:
            yield
        finally:
            STEP_WATCHER.reset(token)

    def started(self, pid: int, argv: Sequence[str]) -> None:
        """A build subprocess exists (called on the loop by roost.builder.process.run): read it back."""
        step = step_name(argv)
        if step and step not in self._seen:
            self._seen.add(step)
            self.start(self._record(pid, tuple(argv), step), name=f"read back build step {step}")

    async def _record(self, pid: int, argv: tuple[str, ...], step: str) -> None:
        isolation = await self.runtime.isolation_of_build(pid, argv, self.app, self.build_dir)
        if isolation is None:
            return  # ended before it could be read: nothing honest to say
        summary = "; ".join(describe(isolation)[:3])
        await self.store.add_event(
            self.app,
            BUILD_ISOLATION,
            f"build {self.deployment} step {step}: {summary}",
            {
                "deployment": self.deployment,
                "step": step,
                "isolation": isolation.to_dict(),
                "summary": describe(isolation),
            },
        )
