"""Each app's own unprivileged uid (and gid of the same number), when Roost runs as root.

Allocated from a configured range, first free number first, and recorded in
`$ROOST_HOME/uids.json` (owner-only, replaced atomically) so an app keeps its uid across
restarts and files it left behind keep their owner. A number some local account already
uses is skipped. Blocking file I/O, once per app: call it in a thread.
"""

from __future__ import annotations

import json
import os
import pwd
import threading
from pathlib import Path

from roost.errors import LimitExceeded


def build_gid(first: int) -> int:
    """The primary gid of every build process (an app's uid, this gid): one below the uid range,
    so it is no app's own gid, and the firewall tells builds from instances by it (`meta skgid`).

    >>> build_gid(200000)
    199999
    """
    return first - 1


class UidBook:
    """Example::

    book = UidBook(home / "uids.json", 200000, 265535)
    uid = book.uid_for("hello")   # 200000 now and after every restart
    """

    def __init__(self, path: Path, first: int, last: int) -> None:
        self.path = path
        self.first = first
        self.last = last
        self._lock = threading.Lock()
        self._uids: dict[str, int] | None = None

    def uid_for(self, app: str) -> int:
        """The app's uid, allocated and recorded on first use. Raises LimitExceeded when the range is used up."""
        with self._lock:
            uids = self._load()
            if app in uids:
                return uids[app]
            uid = self._next_free(set(uids.values()))
            uids[app] = uid
            self._save(uids)
            return uid

    def _next_free(self, taken: set[int]) -> int:
        for uid in range(self.first, self.last + 1):
            if uid not in taken and not _has_account(uid):
                return uid
        raise LimitExceeded(
            f"no free uid left in {self.first}-{self.last} for another app",
            hint="widen the uid range of the sandbox, or remove apps you no longer need",
        )

    def _load(self) -> dict[str, int]:
        if self._uids is None:
            try:
                raw = json.loads(self.path.read_text())
            except FileNotFoundError:
                raw = {}
            except (OSError, ValueError):
                raw = {}
            self._uids = {str(k): int(v) for k, v in raw.items() if isinstance(v, int)}
        return self._uids

    def _save(self, uids: dict[str, int]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_suffix(".json.tmp")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(uids, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, self.path)


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
