"""Stand-in edge: answers every request 404 "no such app" until routes exist.

Reads one request head, answers, closes. Never spawns or routes anything.
"""

from __future__ import annotations

import asyncio
from typing import cast

LIMIT_HEAD = 16 * 1024
BODY = b"404 no such app\n"
RESPONSE = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + BODY
)


class PlaceholderProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._transport is not None and (b"\r\n\r\n" in self._buffer or len(self._buffer) > LIMIT_HEAD):
            self._transport.write(RESPONSE)
            self._transport.close()
