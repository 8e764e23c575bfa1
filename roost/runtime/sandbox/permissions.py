"""Root without bubblewrap: the app's own uid must read its deployment's code and venv from the
host's filesystem, and nothing else of Roost's home. Directories on the way inside the home become
traversable by others (o+x) but never listable (no r, no w for group and others), so no app can
find another's paths. Directories above the home are never changed: when one is closed to the
app's uid, the launcher shows the app its paths through a private view (see reveal.py).
The code is given to the app's group (g+rX, nothing for others).
A venv is only ever opened (o+rX), never narrowed or chowned: uv hard-links its files from its
cache, so a mode set on one venv's file is set on that inode in the cache and in every other
venv that links it; and a venv holds only what its dependency files name, shared by every app
with the same ones. The store, blobs, secrets and passwords keep their owner-only modes. With
bwrap none of this is needed: the app sees only what is bound into its sandbox.
Blocking: call in a thread.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

GROUP_OTHER_RW = stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH
OTHER_ALL = stat.S_IRWXO


def open_for(code: Path, venv: Path, home: Path, gid: int) -> None:
    """Let the processes of group `gid` (an app's own uid and gid) read `code`, and everyone read `venv`.

    Example::

        open_for(spec.code_dir, spec.venv_dir, home, uid_of_app)
    """
    home = home.resolve()
    code, venv = code.resolve(), venv.resolve()
    for path in (code, venv):
        _open_parents(path, home)
    _walk(code, lambda entry, is_dir: _give(entry, gid, is_dir))
    _walk(venv, _share)


def _open_parents(path: Path, home: Path) -> None:
    for parent in reversed(path.parents):
        if parent == home or home in parent.parents:
            _set(parent, add=stat.S_IXOTH, remove=GROUP_OTHER_RW)


def _walk(path: Path, apply: Callable[[Path, bool], None]) -> None:
    apply(path, True)
    for root, directories, files in os.walk(path):
        for name in directories:
            apply(Path(root, name), True)
        for name in files:
            apply(Path(root, name), False)


def _give(path: Path, gid: int, is_dir: bool) -> None:
    """The app's group reads (and enters, or runs what its owner may run); others get nothing.
    A file with other links is shared instead: narrowing it would narrow every link."""
    with contextlib.suppress(OSError):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            return
        if not is_dir and info.st_nlink > 1:
            _share(path, is_dir)
            return
        if info.st_gid != gid:
            os.chown(path, -1, gid, follow_symlinks=False)
        executable = is_dir or bool(info.st_mode & stat.S_IXUSR)
        _set(path, add=stat.S_IRGRP | (stat.S_IXGRP if executable else 0), remove=stat.S_IWGRP | OTHER_ALL)


def _share(path: Path, is_dir: bool) -> None:
    """Everyone reads (and enters, or runs what its owner may run); nobody else writes."""
    with contextlib.suppress(OSError):
        executable = is_dir or bool(path.lstat().st_mode & stat.S_IXUSR)
        _set(path, add=stat.S_IROTH | (stat.S_IXOTH if executable else 0), remove=stat.S_IWOTH)


def _set(path: Path, add: int, remove: int = 0) -> None:
    with contextlib.suppress(OSError):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            return
        wanted = (stat.S_IMODE(mode) | add) & ~remove
        if wanted != stat.S_IMODE(mode):
            path.chmod(wanted)
