"""What the builder asks of a sandbox: one `BuildJail` per build (the app's own uid, a build gid,
a cgroup with the build limits), around every build subprocess that runs the app's or its
dependencies' code. The runtime's sandbox implements it (roost/runtime/sandbox/buildjail.py) and
the daemon wires it in: the builder never imports the runtime, and never decides the limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class BuildLimit(StrEnum):
    MEMORY = "memory"
    PIDS = "pids"
    TIME = "time"


FLAGS = {BuildLimit.MEMORY: "--build-memory", BuildLimit.PIDS: "--build-pids", BuildLimit.TIME: "--build-timeout"}


@dataclass(frozen=True, slots=True)
class Stop:
    """A limit that refused or killed something of a build: `detail` says how much, in words."""

    limit: BuildLimit
    detail: str

    def line(self) -> str:
        """ "stopped by the build pids limit (512): 488 forks refused; raise it with `roost serve --build-pids`"."""
        return (
            f"stopped by the build {self.limit} limit ({self.detail}); raise it with `roost serve {FLAGS[self.limit]}`"
        )

    def hint(self) -> str:
        return (
            f"if a dependency's build really needs more, start roost serve with a higher {FLAGS[self.limit]}; "
            "otherwise a package in the requirements misbehaves: the output above shows which"
        )


class Confined(Protocol):
    """One confined subprocess before and after its spawn (roost.runtime's `Confinement` is one).
    `sandboxed`: its command runs behind bwrap, which reports the command's own pid to `spawned`."""

    sandboxed: bool

    @property
    def pass_fds(self) -> tuple[int, ...]: ...

    def command(self, argv: list[str]) -> list[str]:
        """The argv that runs `argv` confined; opens the descriptors in `pass_fds`."""

    def spawned(self, loop: asyncio.AbstractEventLoop, on_target: Callable[[int], None]) -> None:
        """The child exists: close our copies of its descriptors."""

    def close(self) -> None:
        """It never spawned: release the descriptors."""


class BuildJail(Protocol):
    """One build's confinement. `uid`/`gid` own what the build may write (None: the daemon's own
    user, no separate uid). Example (the builder does this)::

        jail = await jails.open("hello", "d4f1c2a9")
        confined = jail.confine(staging, writable=[staging, venv, cache], read_only=[python_prefix, uv])
        ...                                   # process.run(argv, confined=confined)
        await asyncio.to_thread(jail.kill)    # nothing of a step outlives it
        jail.stopped()                        # [("pids", "512 processes: 488 fork(s) refused")]
        await asyncio.to_thread(jail.close)
    """

    @property
    def uid(self) -> int | None: ...

    @property
    def gid(self) -> int | None: ...

    def confine(self, cwd: Path, writable: Sequence[Path], read_only: Sequence[Path]) -> Confined:
        """A subprocess that sees `writable` read-write and `read_only` read-only at their own paths
        (besides the system's /usr and /etc) and starts in `cwd`."""

    def stopped(self) -> list[tuple[str, str]]:
        """(limit, detail) for each limit that refused or killed something so far; `limit` is a
        `BuildLimit` value: [("pids", "512 processes: 488 fork(s) refused")]."""

    def kill(self) -> None:
        """SIGKILL every process of this build, and wait (blocking: use a thread)."""

    def close(self) -> None:
        """Kill what is left and release the cgroup (blocking: use a thread). Never raises."""


class BuildJails(Protocol):
    """Opens a jail per build; `describe()` is the start-up line saying what builds get."""

    async def open(self, app: str, build: str) -> BuildJail:
        """Raises LimitExceeded when no uid is left for a new app."""

    def describe(self) -> str: ...


__all__ = ["FLAGS", "BuildJail", "BuildJails", "BuildLimit", "Confined", "Stop"]
