"""Per-app log files: every line of every instance, zygote and build, with a
timestamp, the deployment and its source, in size-capped rotating files.

Layout: `<root>/<app>/app.log`, then `app.log.1` ... `app.log.<backups>`.
One line: `2026-11-22T01:47:17.123456Z<TAB>deployment<TAB>source<TAB>text`. The edge's
answers are lines too, with the source `request` and a `RequestLine` as their text.
Writes are single O_APPEND `write()` calls to the page cache (microseconds),
so the event loop may call them. Imports only the leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

LIMIT_FILE_BYTES = 5 * 1024 * 1024
BACKUPS = 3
LIMIT_LINE_BYTES = 16 * 1024
_WHITESPACE = re.compile(r"\s")  # a request line's fields are split on spaces


@dataclass(frozen=True, slots=True)
class LogLine:
    at: float
    deployment: str
    source: str
    text: str

    def render(self) -> str:
        stamp = datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        return f"{stamp} {self.deployment} {self.source}: {self.text}"

    def is_request(self) -> bool:
        return self.source == REQUEST_SOURCE

    def to_wire(self) -> dict[str, object]:
        """The line for `roost logs --json`: a request line's fields parsed out."""
        data: dict[str, object] = {
            "at": self.at,
            "time": datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "deployment": self.deployment,
            "source": self.source,
            "kind": "request" if self.is_request() else "app",
            "text": self.text,
        }
        request = RequestLine.parse(self.text) if self.is_request() else None
        if request is not None:
            data.update(request.to_wire())
        return data


REQUEST_SOURCE = "request"


@dataclass(frozen=True, slots=True)
class RequestLine:
    """One answer of the edge, as its log line's text: `GET /hello 200 3.1ms warm i-ab12cd`."""

    method: str
    path: str
    status: int
    seconds: float
    start: str  # X-Roost-Start: hot, warm or cold
    instance: str  # "-" when no instance took the request (a 404, a 503 from the edge)

    def text(self) -> str:
        path = _WHITESPACE.sub("%20", self.path) or "/"
        return f"{self.method} {path} {self.status} {self.seconds * 1000:.1f}ms {self.start} {self.instance or '-'}"

    @classmethod
    def parse(cls, text: str) -> RequestLine | None:
        parts = text.split(" ")
        if len(parts) != 6 or not parts[2].isdigit() or not parts[3].endswith("ms"):
            return None
        try:
            seconds = float(parts[3].removesuffix("ms")) / 1000
        except ValueError:
            return None
        return cls(parts[0], parts[1], int(parts[2]), seconds, parts[4], parts[5])

    def to_wire(self) -> dict[str, object]:
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "duration_ms": round(self.seconds * 1000, 1),
            "start": self.start,
            "instance": self.instance,
        }


class _Stamps:
    """`2026-12-06T03:41:44.123456Z` for a time, formatting the whole seconds once per second:
    every answer of the edge writes a line, and strftime was most of a line's cost."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, at: float) -> str:
        second = int(at)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{int((at - second) * 1_000_000):06d}Z"


_stamp = _Stamps()


def _format(at: float, deployment: str, source: str, text: str) -> bytes:
    clean = text.replace("\t", "    ").rstrip("\r\n").replace("\n", " | ")
    encoded = clean.encode("utf-8", "replace")[:LIMIT_LINE_BYTES]
    return f"{_stamp(at)}\t{deployment}\t{source}\t".encode() + encoded + b"\n"


def parse_line(raw: str) -> LogLine | None:
    parts = raw.rstrip("\n").split("\t", 3)
    if len(parts) != 4:
        return None
    try:
        at = datetime.strptime(parts[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    return LogLine(at, parts[1], parts[2], parts[3])


class AppLog:
    """The log of one app. `write` appends a line and rotates past the size cap."""

    def __init__(self, root: Path, app: str, limit_bytes: int = LIMIT_FILE_BYTES, backups: int = BACKUPS) -> None:
        self.directory = root / app
        self.path = self.directory / "app.log"
        self.limit_bytes = limit_bytes
        self.backups = backups
        self._fd: int | None = None
        self._size = 0

    def write(self, deployment: str, source: str, text: str, at: float | None = None) -> None:
        data = _format(at or time.time(), deployment, source, text)
        if self._fd is None:
            self._open()
        if self._size + len(data) > self.limit_bytes:
            self._rotate()
        assert self._fd is not None  # noqa: S101 - opened just above
        os.write(self._fd, data)
        self._size += len(data)

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        self.close()
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"app.log.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"app.log.{index + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name("app.log.1"))
        self._open()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LogBook:
    """All apps' logs under one root; hands out one `AppLog` per app."""

    def __init__(self, root: Path, limit_bytes: int = LIMIT_FILE_BYTES, backups: int = BACKUPS) -> None:
        self.root = root
        self.limit_bytes = limit_bytes
        self.backups = backups
        self._logs: dict[str, AppLog] = {}
        self._followers: dict[str, list[Callable[[LogLine], None]]] = {}

    def app(self, app: str) -> AppLog:
        log = self._logs.get(app)
        if log is None:
            log = self._logs[app] = AppLog(self.root, app, self.limit_bytes, self.backups)
        return log

    def write(self, app: str, deployment: str, source: str, text: str) -> None:
        at = time.time()
        self.app(app).write(deployment, source, text, at)
        followers = self._followers.get(app)
        if followers:
            line = parse_line(_format(at, deployment, source, text).decode("utf-8", "replace"))
            for follower in list(followers):
                if line is not None:
                    follower(line)  # exactly what a later read of the file returns, so overlaps can be found

    def follow(self, app: str, callback: Callable[[LogLine], None]) -> Callable[[], None]:
        """Call `callback` with every line written from now on; returns the way to stop.

        To print what is kept and then follow without losing or repeating a line: follow
        first, read, then drop the overlap (`LogTail.drop_overlap` does)."""
        self._followers.setdefault(app, []).append(callback)

        def stop() -> None:
            followers = self._followers.get(app, [])
            if callback in followers:
                followers.remove(callback)

        return stop

    def files(self, app: str) -> list[Path]:
        """The app's log files, oldest first."""
        directory = self.root / app
        rotated = [directory / f"app.log.{i}" for i in range(self.backups, 0, -1)]
        return [p for p in [*rotated, directory / "app.log"] if p.exists()]

    def read(self, app: str, since: float | None = None, deployment: str | None = None) -> list[LogLine]:
        """Every kept line of the app, oldest first, filtered. Blocking: call in a thread."""
        lines: list[LogLine] = []
        for path in self.files(app):
            with path.open(encoding="utf-8", errors="replace") as handle:
                for raw in handle:
                    if not raw.endswith("\n"):
                        continue  # a line being written right now: a follower gets it whole
                    line = parse_line(raw)
                    if line is None or (since is not None and line.at < since):
                        continue
                    if deployment is not None and line.deployment != deployment:
                        continue
                    lines.append(line)
        return lines

    def remove(self, app: str) -> None:
        log = self._logs.pop(app, None)
        if log is not None:
            log.close()
        for path in self.files(app):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()


class LogTail:
    """A follower's bounded buffer (the callback for `LogBook.follow`), for one reader.

    A reader slower than the app must not hold the daemon's memory hostage, nor lose lines
    silently: past `limit` buffered lines, new ones are counted and dropped, and the reader
    is handed a line saying how many it missed before it gets the next one."""

    def __init__(self, limit: int, deployment: str | None = None) -> None:
        self.limit = limit
        self.deployment = deployment
        self.skipped = 0
        self._lines: deque[LogLine] = deque()
        self._wake = asyncio.Event()

    def __call__(self, line: LogLine) -> None:
        if self.deployment is not None and line.deployment != self.deployment:
            return
        if len(self._lines) >= self.limit:
            self.skipped += 1
        else:
            self._lines.append(line)
        self._wake.set()

    def drop_overlap(self, read: list[LogLine]) -> None:
        """Forget the buffered lines that `read` (the file, read after following began) already
        holds: the longest run at the start of the buffer that ends `read`. Both are the same
        stream in the same order (one writer), so only that run can be in both."""
        buffered = list(self._lines)
        for count in range(min(len(buffered), len(read)), 0, -1):
            if buffered[:count] == read[-count:]:
                for _ in range(count):
                    self._lines.popleft()
                return

    async def take(self) -> list[LogLine]:
        """Every line buffered so far (waiting for one), after a notice of skipped lines if any."""
        while not self._lines and not self.skipped:
            self._wake.clear()
            await self._wake.wait()
        taken: list[LogLine] = []
        if self.skipped:
            what = f"{self.skipped} line(s) skipped: this reader fell behind (see the log files for all of them)"
            taken.append(LogLine(time.time(), "-", "roost", what))
            self.skipped = 0
        taken.extend(self._lines)
        self._lines.clear()
        return taken
