"""Raw bytes both ways after an upstream's 101 (WebSocket and other upgrades).

Owns nothing but the splice: back-pressure crosses over (a full side pauses
reading on the other), an EOF is passed on as a half-close, and the end of
either connection ends both and tells the exchange once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Tunnel:
    __slots__ = ("_client", "_done", "_eofs", "_on_closed", "_upstream")

    def __init__(self, client: asyncio.Transport, upstream: asyncio.Transport, on_closed: Callable[[], None]) -> None:
        self._client = client
        self._upstream = upstream
        self._on_closed = on_closed
        self._eofs = 0
        self._done = False

    def start(self, to_upstream: bytes, to_client: bytes) -> None:
        """Pass on what each side sent before the tunnel existed."""
        if to_upstream:
            self._upstream.write(to_upstream)
        if to_client:
            self._client.write(to_client)

    def from_client(self, data: bytes) -> None:
        self._upstream.write(data)

    def from_upstream(self, data: bytes) -> None:
        self._client.write(data)

    def pause_client(self) -> None:
        """The upstream's write buffer is full: stop reading the client."""
        self._client.pause_reading()

    def resume_client(self) -> None:
        if not self._client.is_closing():
            self._client.resume_reading()

    def pause_upstream(self) -> None:
        self._upstream.pause_reading()

    def resume_upstream(self) -> None:
        if not self._upstream.is_closing():
            self._upstream.resume_reading()

    def eof_from_client(self) -> bool:
        return self._half_close(self._upstream)

    def eof_from_upstream(self) -> bool:
        return self._half_close(self._client)

    def _half_close(self, other: asyncio.Transport) -> bool:
        """One side finished sending: tell the other; close both once both have finished."""
        self._eofs += 1
        if self._eofs >= 2 or not other.can_write_eof():
            self.closed()
            return False
        other.write_eof()
        return True

    def closed(self) -> None:
        """Either side went away: close both, report once."""
        if self._done:
            return
        self._done = True
        self._client.close()
        self._upstream.close()
        self._on_closed()
