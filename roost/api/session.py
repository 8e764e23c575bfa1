"""The dashboard's browser sessions and one-time login links, kept in the daemon's memory.

A session is what a login (password or token) or a one-time link (`roost ui`) turns into: a
random id in an HttpOnly, SameSite=Strict cookie and a CSRF token the page sends back in a
header on every change. A session keeps the credential's kind, not its grants: the middleware
asks again on every request (a deleted user or a revoked token stops working at once). A restart
of the daemon ends every session. Never does I/O; `now` is an argument.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

COOKIE = "roost_session"
CSRF_HEADER = "x-csrf-token"
SESSION_IDLE_SECONDS = 2 * 3600.0
SESSION_MAX_SECONDS = 12 * 3600.0
LINK_SECONDS = 120.0
LIMIT_SESSIONS = 10_000
LIMIT_LINKS = 100


@dataclass(frozen=True, slots=True)
class Login:
    """Who a session acts as. kind "password": `name` is the user; "token": `token` is presented
    again on each request; "link": the Unix socket's owner (an admin) via `roost ui`."""

    kind: str
    name: str
    token: str = ""


@dataclass(slots=True)
class Session:
    login: Login
    csrf: str
    created_at: float
    used_at: float

    def is_live(self, now: float) -> bool:
        return now - self.used_at < SESSION_IDLE_SECONDS and now - self.created_at < SESSION_MAX_SECONDS

    def is_csrf(self, presented: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), presented.encode())


class SessionBook:
    """Example::

    sid, session = book.open(Login("password", "alice"), now)   # Set-Cookie: roost_session=sid
    book.get(sid, now)       # the session, or None (unknown, expired, logged out)
    book.close(sid)          # logout: the id is worthless from now on
    """

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._links: dict[str, float] = {}

    def open(self, login: Login, now: float) -> tuple[str, Session]:
        while len(self._sessions) >= LIMIT_SESSIONS:
            self._sessions.popitem(last=False)  # the oldest session goes first
        sid = secrets.token_urlsafe(32)
        session = self._sessions[sid] = Session(login, secrets.token_urlsafe(32), now, now)
        return sid, session

    def get(self, sid: str, now: float) -> Session | None:
        session = self._sessions.get(sid)
        if session is None:
            return None
        if not session.is_live(now):
            del self._sessions[sid]
            return None
        session.used_at = now
        return session

    def close(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def issue_link(self, now: float) -> str:
        """A one-time login secret, valid LINK_SECONDS, for the Unix socket's owner."""
        self._links = {secret: until for secret, until in self._links.items() if until > now}
        if len(self._links) >= LIMIT_LINKS:
            self._links.pop(next(iter(self._links)))
        secret = secrets.token_urlsafe(32)
        self._links[secret] = now + LINK_SECONDS
        return secret

    def redeem_link(self, secret: str, now: float) -> bool:
        """True once for a live secret; it is spent whether or not it was still live."""
        until = self._links.pop(secret, 0.0)
        return until > now
