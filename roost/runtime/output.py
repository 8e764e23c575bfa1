"""Reads a child's stdout and stderr (one pipe for both, so their order survives) line by
line on the event loop, into the app's log and a short tail kept for crash reasons.
Never blocks the loop: the pipe is read through asyncio's transport.

A mark splits the tail in episodes (an instance marks it when it gets busy): a death that
leaves no words of its own, an OOM kill, quotes only the lines since the mark, never an
older traceback of a request that had long ended."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Callable

LIMIT_LINE = 16 * 1024
TAIL_LINES = 20


class _LineProtocol(asyncio.Protocol):
    def __init__(self, on_line: Callable[[str], None], done: asyncio.Future[None]) -> None:
        self._on_line = on_line
        self._done = done
        self._partial = b""

    def data_received(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > LIMIT_LINE:
            lines.append(self._partial)
            self._partial = b""
        for line in lines:
            self._emit(line)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._partial:
            self._emit(self._partial)
            self._partial = b""
        if not self._done.done():
            self._done.set_result(None)

    def _emit(self, line: bytes) -> None:
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        self._on_line(text)


class Output:
    """One child's captured output: every line to `on_line`, the last ones in `tail`."""

    def __init__(self, on_line: Callable[[str], None], tail_lines: int = TAIL_LINES) -> None:
        self.tail: deque[str] = deque(maxlen=tail_lines)
        self._on_line = on_line
        self._transport: asyncio.ReadTransport | None = None
        self.done: asyncio.Future[None] | None = None
        self._kept = 0  # non-blank lines ever put in the tail
        self._marked = 0  # how many of them came before the mark

    def _line(self, text: str) -> None:
        if text.strip():
            self.tail.append(text)
            self._kept += 1
        self._on_line(text)

    def mark(self) -> None:
        """What comes next is a new episode: lines so far are not quoted by `since_mark`."""
        self._marked = self._kept

    def since_mark(self) -> list[str]:
        """The tail's lines written after the last mark (all of them if never marked)."""
        fresh = min(self._kept - self._marked, len(self.tail))
        return list(self.tail)[len(self.tail) - fresh :] if fresh else []

    def log(self, text: str) -> None:
        """A line of Roost's own about this process, in the same log."""
        self._line(text)

    async def attach(self, fd: int) -> None:
        """Start reading the read end `fd` of the child's pipe; owns and closes it."""
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        pipe = os.fdopen(fd, "rb", buffering=0)
        try:
            transport, _ = await loop.connect_read_pipe(lambda: _LineProtocol(self._line, self.done), pipe)  # type: ignore[arg-type]
        except BaseException:
            pipe.close()
            raise
        self._transport = transport

    async def finish(self, within: float = 0.5) -> None:
        """Wait briefly for the last lines (EOF), then stop reading."""
        if self.done is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within):
                    await asyncio.shield(self.done)
        self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
