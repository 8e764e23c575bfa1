"""Root without bubblewrap: the app's own uid must read its deployment's code and venv from
the host's filesystem. Directories above them become traversable (o+x, never listable), the
code and venv themselves readable (o+rX). Weaker than bwrap, which shows an app only its own
files: here another app's uid could read them if it knew the path (deployment ids are random).
The store, the secrets and the passwords keep their owner-only modes. Blocking: in a thread.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path


def open_for(paths: Iterable[Path]) -> None:
    for path in paths:
        for parent in reversed(path.parents):
            _add(parent, stat.S_IXOTH)
        _add(path, stat.S_IROTH | stat.S_IXOTH)
        for root, directories, files in os.walk(path):
            for name in directories:
                _add(Path(root, name), stat.S_IROTH | stat.S_IXOTH)
            for name in files:
                _add(Path(root, name), stat.S_IROTH)


def _add(path: Path, bits: int) -> None:
    with contextlib.suppress(OSError):
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and (mode & bits) != bits:
            path.chmod(stat.S_IMODE(mode) | bits)
