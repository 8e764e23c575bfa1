"""Directory moves for the builder: replace a tree atomically, remove one safely, measure one.
Blocking: the builder calls these through `in_thread`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def in_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`asyncio.to_thread`, except that a cancelled caller still waits for the thread to end.

    A thread cannot be stopped; waiting for it means the cleanup that follows
    a cancellation never races with a write still under way.
    """
    work = asyncio.ensure_future(asyncio.to_thread(func, *args, **kwargs))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        if not work.cancelled():
            work.exception()  # retrieved: the cancellation is what propagates
        raise


def tree_size(path: Path) -> int:
    """Bytes held by the files under `path` (links counted once each, not followed)."""
    total = 0
    for directory, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except FileNotFoundError:
                continue
    return total


def remove_tree(path: Path) -> int:
    """Remove `path` and return the bytes it held; nothing when it is missing.

    The tree is first renamed aside, so a removal cut short never leaves a
    half-deleted tree under its old name.
    """
    if not path.exists() and not path.is_symlink():
        return 0
    doomed = path.with_name(f".trash-{path.name}-{secrets.token_hex(4)}")
    os.replace(path, doomed)
    if doomed.is_symlink() or not doomed.is_dir():
        size = doomed.lstat().st_size
        doomed.unlink()
        return size
    size = tree_size(doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return size


def replace_dir(built: Path, final: Path) -> None:
    """Move the finished tree `built` to `final`, setting aside whatever was there."""
    if final.exists():
        remove_tree(final)
    os.replace(built, final)
    fsync_dir(final.parent)


def chown_tree(path: Path, uid: int, gid: int, *, seal: bool = False) -> None:
    """Give `path` and everything under it to `uid`:`gid`, never following a symbolic link.

    `seal` (giving a build's tree back to the daemon): also take away group and other write and
    the set-id bits, so the app's uid, whose build wrote the tree, can no longer change it. Call it
    only once nothing of the build runs (its jail killed): a tree changing under the walk could
    swap a directory for a link.
    """
    _chown_one(path, uid, gid, seal)
    for directory, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            _chown_one(Path(directory) / name, uid, gid, seal)


def _chown_one(path: Path, uid: int, gid: int, seal: bool) -> None:
    try:
        info = os.lstat(path)
        os.lchown(path, uid, gid)
        if seal and not stat.S_ISLNK(info.st_mode):
            os.chmod(path, stat.S_IMODE(info.st_mode) & ~(stat.S_IWGRP | stat.S_IWOTH | stat.S_ISUID | stat.S_ISGID))
    except FileNotFoundError:
        return


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["chown_tree", "fsync_dir", "in_thread", "remove_tree", "replace_dir", "tree_size"]
