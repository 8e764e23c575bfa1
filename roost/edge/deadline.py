"""A deadline that moves often and rarely fires, on one `call_at` handle.

A client connection times each head read, idle spell and request phase; a
stream moves its deadline on every read. Re-arming a `call_later` handle per
move cost more than the rest of keep-alive (measured: about 0.5 us of edge CPU
per request, call_later plus cancel), so one handle serves every deadline: it
is moved only when a deadline comes sooner than it, and re-armed when it fires
early. Owns no policy: the owner says what expiry means.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    """Calls `on_expiry` once loop time reaches the last `set` deadline, unless `clear`ed first."""

    __slots__ = ("_armed", "_handle", "_loop", "_on_expiry", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expiry: Callable[[], None]) -> None:
        self._loop = loop
        self._on_expiry = on_expiry
        self._handle: asyncio.TimerHandle | None = None
        self._when = 0.0
        self._armed = False

    def set(self, when: float) -> None:
        """Expire at loop time `when`, replacing any earlier deadline."""
        self._when = when
        self._armed = True
        handle = self._handle
        if handle is None or handle.when() > when:
            if handle is not None:
                handle.cancel()
            self._handle = self._loop.call_at(when, self._fired)

    def set_in(self, delay: float) -> None:
        """Expire `delay` seconds from now."""
        self.set(self._loop.time() + delay)

    def clear(self) -> None:
        """No deadline now. The handle stays (the next `set` will likely reuse it) and fires idle."""
        self._armed = False

    def cancel(self) -> None:
        """No deadline, and no handle: for an owner that is going away."""
        self._armed = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fired(self) -> None:
        self._handle = None
        if not self._armed:
            return
        if self._loop.time() < self._when:  # moved later since it was armed: wait for the rest
            self._handle = self._loop.call_at(self._when, self._fired)
            return
        self._armed = False
        self._on_expiry()
