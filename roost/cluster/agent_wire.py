"""The frames between a node's agent actor and its daemon, over the daemon's owner-only Unix
socket: an 8-byte big-endian length, then a pickle. A request is (method, args); a reply is
("ok", value) or ("error", the RoostError's wire form). Both ends are the same Roost, as root (or
the daemon's user): pickle is safe only because no one else can connect (0600 socket in a 0700
home, and the daemon checks the peer's uid).

No Ray here, and no asyncio on the blocking side (the actor's); both sides are below.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
import time
from typing import Any

from roost.errors import RoostError, from_wire

HEADER = struct.Struct("!Q")
LIMIT_FRAME = 3 * 1024**3  # an archive (the registry takes up to 2 GiB) and its artifact
METHODS = frozenset({"hello", "prepare", "assign", "stop_instance", "retire", "report", "show", "isolation"})
"""The `NodeHost` methods a caller may name; nothing else of the daemon is reachable."""

Request = tuple[str, tuple[Any, ...]]
Reply = tuple[str, Any]


class FrameError(Exception):
    """A frame that is too large or does not unpickle: the connection is dropped."""


def encode(value: object) -> bytes:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def _decode(body: bytes) -> Any:
    try:
        return pickle.loads(body)  # noqa: S301 - only the daemon's own user can reach the socket (see the docstring)
    except Exception as exc:
        raise FrameError(f"a frame does not unpickle: {exc}") from exc


def _length(header: bytes) -> int:
    (length,) = HEADER.unpack(header)
    if length > LIMIT_FRAME:
        raise FrameError(f"a frame of {length} bytes is over the limit of {LIMIT_FRAME}")
    return int(length)


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next frame's value; IncompleteReadError at the end of the stream, FrameError for a bad frame."""
    length = _length(await reader.readexactly(HEADER.size))
    return _decode(await reader.readexactly(length))


def ok(value: object) -> Reply:
    return ("ok", value)


def error(exc: RoostError) -> Reply:
    return ("error", exc.to_wire())


def unwrap(reply: object) -> Any:
    """A reply's value, or the error it carries raised as the same RoostError class."""
    if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == "ok":
        return reply[1]
    if isinstance(reply, tuple) and len(reply) == 2 and reply[0] == "error" and isinstance(reply[1], dict):
        raise from_wire(reply[1], 500)
    raise RoostError(f"the node daemon sent a reply that is not one: {reply!r:.200}")


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, sock: socket.socket) -> None:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)


def _recv_exactly(sock: socket.socket, size: int, deadline: _Deadline) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        deadline.left(sock)
        chunk = sock.recv(min(size - len(chunks), 1024 * 1024))
        if not chunk:
            raise ConnectionError("the node daemon closed the connection before its answer")
        chunks += chunk
    return bytes(chunks)


def round_trip(path: str, request: Request, timeout: float) -> Any:
    """Send one request on a new connection and return its reply's value within `timeout` seconds.
    Raises the RoostError the daemon raised, OSError when it cannot be reached or does not answer
    in time (TimeoutError), FrameError for a broken reply. Blocking."""
    deadline = _Deadline(timeout)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        deadline.left(sock)
        sock.connect(path)
        deadline.left(sock)
        sock.sendall(encode(request))
        length = _length(_recv_exactly(sock, HEADER.size, deadline))
        reply = _decode(_recv_exactly(sock, length, deadline))
    return unwrap(reply)
