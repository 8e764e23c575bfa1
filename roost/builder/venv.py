"""The venv cache: `<root>/<key>`, built in a temporary directory and renamed into place with its
marker inside, so a half-built venv is never used; one lock per key (asyncio here, flock across
processes) keeps two builds of the same key apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from roost.builder.fs import in_thread, remove_tree, replace_dir

MARKER = ".roost-complete"
GRACE_SECONDS = 3600.0
_KEY_RE = re.compile(r"[0-9a-f]{64}")


class KeyLocks:
    """An exclusive lock per key: held across the check, the build and the rename."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    def is_held(self, key: str) -> bool:
        lock = self._locks.get(key)
        return lock is not None and lock.locked()

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                fd = await asyncio.to_thread(self._open, key)
                await _flock(fd)
                try:
                    yield
                finally:
                    os.close(fd)  # drops the flock
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]

    def _open(self, key: str) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        return os.open(self.directory / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


async def _flock(fd: int) -> None:
    """Take an exclusive flock on `fd`, waiting in a thread only when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass
    else:
        return
    acquire = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
    try:
        await asyncio.shield(acquire)
    except BaseException:
        # The thread cannot be stopped: close the descriptor once it returns, which drops the lock.
        acquire.add_done_callback(lambda done: _close_after(done, fd))
        raise


def _close_after(done: asyncio.Future[None], fd: int) -> None:
    if not done.cancelled():
        done.exception()  # retrieved, so asyncio does not report it
    os.close(fd)


class VenvCache:
    """Virtual environments by key under `root`.

    Example::

        venv, reused = await cache.ensure(key, lambda tmp: install(tmp))
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks = KeyLocks(root / ".locks")

    def path(self, key: str) -> Path:
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"not a venv key: {key!r}")
        return self.root / key

    def is_complete(self, key: str) -> bool:
        return (self.path(key) / MARKER).is_file()

    async def ensure(self, key: str, create: Callable[[Path], Awaitable[None]]) -> tuple[Path, bool]:
        """The venv for `key` and whether it was reused; `create(tmp)` builds a missing one in `tmp`.

        Whatever `create` raises propagates, and its temporary directory is removed.
        """
        final = self.path(key)
        async with self._locks.hold(key):
            if self.is_complete(key):
                await asyncio.to_thread(os.utime, final / MARKER)  # last used: gc keeps it
                return final, True
            building = self.root / f".tmp-{key}-{secrets.token_hex(4)}"
            try:
                await create(building)
                await in_thread(_seal, building, final)
            except BaseException:
                await in_thread(remove_tree, building)
                raise
            return final, False

    async def gc(
        self, referenced: set[str], *, grace_seconds: float = GRACE_SECONDS, now: float | None = None
    ) -> list[tuple[str, int]]:
        """Remove the venvs no key in `referenced` names and unused for `grace_seconds`.

        Returns (key, bytes freed) for each. Leftovers of builds cut short are
        removed too, when no build of theirs is running.
        """
        moment = time.time() if now is None else now
        names = await asyncio.to_thread(_list, self.root)
        freed: list[tuple[str, int]] = []
        for name in names:
            key = name if _KEY_RE.fullmatch(name) else _leftover_key(name)
            if key is None or key in referenced:
                continue
            async with self._locks.hold(key):
                size = await in_thread(_remove_if_idle, self.root / name, moment - grace_seconds)
            if size is not None and name == key:
                freed.append((key, size))
        return freed


def _seal(building: Path, final: Path) -> None:
    (building / MARKER).write_text(f"{time.time()}\n")
    replace_dir(building, final)


def _list(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def _leftover_key(name: str) -> str | None:
    match = re.fullmatch(r"\.(?:tmp|trash)-([0-9a-f]{64})-[0-9a-f]+", name)
    return match.group(1) if match else None


def _remove_if_idle(path: Path, used_before: float) -> int | None:
    """Remove `path` when its marker (or, without one, the directory) is older than `used_before`."""
    stamp = path / MARKER if (path / MARKER).is_file() else path
    try:
        if stamp.stat().st_mtime > used_before:
            return None
    except FileNotFoundError:
        return None
    return remove_tree(path)


__all__ = ["MARKER", "KeyLocks", "VenvCache"]
