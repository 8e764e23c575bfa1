"""Who may use the admin API. An ASGI middleware in front of every route.

The Unix socket is the local door (no password unless --require-password).
Over TCP every client shows a token or a password, loopback included, unless
--trust-loopback. The client's address is the socket peer; X-Forwarded-For
counts only from --trust-proxy networks. Password attempts are throttled (never
tokens: a valid one always gets in). Each identity carries its grants; what a route
needs of them is decided in scopes.py, after routing. The dashboard's browser sessions
(session.py) are a third way in: a session cookie, and on every change its CSRF header.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from roost.api.session import COOKIE, CSRF_HEADER, Login, SessionBook
from roost.api.throttle import Admission, Sources, Throttle, ThrottlePolicy
from roost.clientaddr import Network, client_address, is_localhost
from roost.control import TokenInfo
from roost.grants import ADMIN, Grants
from roost.passwords import FileVersion, PasswordFile

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
OPEN_PATHS = frozenset({"/healthz", "/ui", "/ui/", "/ui/login", "/ui/link"})
OPEN_PREFIX = "/ui/assets/"  # the dashboard's own HTML, CSS and JS: nothing secret
UI_HEADER = "x-roost-ui"  # sent by the dashboard's page: a 401 then asks for no Basic login box
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CACHE_SECONDS = 60.0
BCRYPT_PARALLEL = 2
LIMIT_WAIT_SECONDS = 30.0  # a login waiting for its source's attempts in flight refuses after this
TOO_MANY = "too many failed logins from this address or for this user"
AUDIT_KIND = "api.call"  # the event kind of an audit record
AUDIT_READ = "roost.audit_read"  # a scope["state"] key: scopes.py marks a read that must be audited (a reveal)


@dataclass(frozen=True, slots=True)
class Identity:
    name: str  # user or token name; "local" for the Unix socket and trusted loopback
    kind: str  # "socket", "loopback", "password", "token"
    address: str
    grants: Grants = ADMIN  # the socket's owner and trusted loopback are admins

    def describe(self) -> str:
        """How a refusal names the caller: 'token "ci"', 'user "alice"'."""
        who = {"token": "token", "password": "user"}.get(self.kind, self.kind)
        return f'{who} "{self.name}"'


@dataclass(frozen=True, slots=True)
class DoorSettings:
    """How one listening socket treats its clients."""

    via_unix: bool
    require_password: bool = False
    trust_loopback: bool = False
    trusted_proxies: tuple[Network, ...] = ()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request gets no identity: 401 (wrong or missing credentials) or 429 (throttled)."""

    status: int
    message: str
    retry_after: float = 0.0


WRONG = Refusal(401, "wrong credentials")


class Authenticator:
    """Checks credentials; shared by every door so throttling and caching are global.

    A token is checked on every request and never throttled: it is 32 random bytes (no guess can
    succeed) and checking one costs a SHA-256 and an indexed lookup, so a valid token always gets
    in, whatever others sent from the same address. A password is throttled (throttle.py) before
    bcrypt runs. A good password is cached for CACHE_SECONDS, so a busy CLI pays neither bcrypt
    nor a delay on every call; the cache is dropped whenever the password file changes (`roost
    password` writes it directly, so a changed or deleted password stops working at once).
    """

    def __init__(
        self,
        passwords: PasswordFile,
        token_info: Callable[[str], Awaitable[TokenInfo | None]],
        policy: ThrottlePolicy | None = None,
    ) -> None:
        self.passwords = passwords
        self.token_info = token_info
        self.throttle = Throttle(policy)
        self._bcrypt = asyncio.Semaphore(BCRYPT_PARALLEL)
        self._cache: dict[str, float] = {}
        self._cache_version: FileVersion | None = None
        self._settled = asyncio.Event()

    async def identify(self, authorization: str, address: str) -> Identity | Refusal:
        """Who an Authorization header belongs to, or why it is refused."""
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return await self._bearer(value.strip(), address)
        credentials = _basic(authorization)
        if credentials is None:
            return Refusal(401, "credentials must be a Bearer token or Basic user:password")
        return await self.login(*credentials, address)

    async def identify_login(self, login: Login, address: str) -> Identity | Refusal:
        """A session's identity, asked again on every request: the grants of now."""
        if login.kind == "token":
            return await self._bearer(login.token, address)
        if login.kind == "password":
            return await self._user(login.name, address)
        return Identity("local", "link", address)  # `roost ui`: the Unix socket's owner

    async def _bearer(self, token: str, address: str) -> Identity | Refusal:
        """A token's identity; a user's token (`roost login`) has the user's grants of now, and
        stops working when the user is deleted."""
        found = await self.token_info(token)
        if found is None:
            return WRONG
        if found.user is None:
            return Identity(found.name, "token", address, found.grants)
        grants = await asyncio.to_thread(self.passwords.grants, found.user)
        return WRONG if grants is None else Identity(found.name, "token", address, grants)

    async def _user(self, user: str, address: str) -> Identity | Refusal:
        grants = await asyncio.to_thread(self.passwords.grants, user)
        return WRONG if grants is None else Identity(user, "password", address, grants)

    async def login(self, user: str, password: str, address: str) -> Identity | Refusal:
        """One throttled password check. Waits only while an attempt of the same source is in
        flight (its settling wakes us), and never past LIMIT_WAIT_SECONDS: then it refuses."""
        sources = Sources(address, user)
        key = _cache_key(user, password)
        deadline = time.monotonic() + LIMIT_WAIT_SECONDS
        while True:
            if await self._cache_hit(key):
                return await self._user(user, address)
            verdict = self.throttle.reserve(sources, time.monotonic())
            if verdict.admission is Admission.ADMITTED:
                break
            if verdict.admission is Admission.REFUSED or not await self._wait_settled(deadline):
                return Refusal(429, TOO_MANY, verdict.retry_after or self.throttle.policy.delay_locked)
        ok = False
        try:
            if verdict.delay:
                await asyncio.sleep(verdict.delay)
            ok = await self.password_ok(user, password)
        finally:
            # a cancelled attempt counts as failed: its guess may have been evaluated
            retry_after = self._settle(sources, ok)
        if ok:
            return await self._user(user, address)
        # the failure that locks a source is answered 401, the failures of a locked source 429
        return Refusal(429, TOO_MANY, max(retry_after, 1.0)) if verdict.locked else WRONG

    def _settle(self, sources: Sources, ok: bool) -> float:
        """Record the outcome of an admitted attempt and wake the attempts waiting in `login`."""
        retry_after = self.throttle.settle(sources, ok, time.monotonic())
        # one-shot: waiters hold the old event, later waiters get a fresh one
        self._settled.set()
        self._settled = asyncio.Event()
        return retry_after

    async def _wait_settled(self, deadline: float) -> bool:
        """Wait for any attempt to settle; False once `deadline` has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            async with asyncio.timeout(remaining):
                await self._settled.wait()
        except TimeoutError:
            return False
        return True

    async def password_ok(self, user: str, password: str) -> bool:
        key = _cache_key(user, password)
        if await self._cache_hit(key):
            return True
        async with self._bcrypt:
            if await self._cache_hit(key):  # a parallel request with the same credentials just checked them
                return True
            version = await asyncio.to_thread(self.passwords.version)
            ok = await asyncio.to_thread(self.passwords.verify, user, password)
        if ok:
            self._remember(key, version)
        return ok

    async def _cache_hit(self, key: str) -> bool:
        if key not in self._cache:
            return False
        version = await asyncio.to_thread(self.passwords.version)
        if version != self._cache_version:
            # the file changed: every cached check may be stale
            self._cache.clear()
            return False
        return self._cache.get(key, 0.0) > time.monotonic()

    def _remember(self, key: str, version: FileVersion | None) -> None:
        if version != self._cache_version or len(self._cache) > 1000:
            self._cache.clear()
            self._cache_version = version
        self._cache[key] = time.monotonic() + CACHE_SECONDS


def _basic(authorization: str) -> tuple[str, str] | None:
    """(user, password) of a Basic Authorization header, or None."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _cache_key(user: str, password: str) -> str:
    return hashlib.sha256(f"{user}\0{password}".encode()).hexdigest()


AuditSink = Callable[[Identity, str, str, int], Awaitable[None]]


def is_open(path: str) -> bool:
    """Paths anyone may fetch: the health check, the dashboard's page and its login."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIX)


def session_id(headers: dict[str, str]) -> str:
    """The dashboard's session cookie, or ""."""
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return ""


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        auth: Authenticator,
        door: DoorSettings,
        audit: AuditSink,
        sessions: SessionBook | None = None,
    ) -> None:
        self.app = app
        self.auth = auth
        self.door = door
        self.audit = audit
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        address = self._address(scope, headers)
        scope.setdefault("state", {})["address"] = address
        if is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        identity = self._trusted(address)
        if identity is None:
            if "authorization" not in headers and self.sessions is not None and session_id(headers):
                identity = await self._from_session(scope, headers, address, send)
            else:
                identity = await self._authenticate(headers, address, send)
            if identity is None:
                return
        scope["state"]["identity"] = identity
        await self._call_audited(scope, receive, send, identity)

    async def _from_session(self, scope: Scope, headers: dict[str, str], address: str, send: Send) -> Identity | None:
        """The identity of a live session; a change must carry the session's CSRF token too
        (refused 403 without it, and audited as refused)."""
        assert self.sessions is not None  # noqa: S101 - checked by the caller
        sid = session_id(headers)
        session = self.sessions.get(sid, time.time())
        if session is None:
            await _refuse(send, 401, "unauthorized", "the session has ended", "log in again", 0, challenge=False)
            return None
        outcome = await self.auth.identify_login(session.login, address)
        if isinstance(outcome, Refusal):
            self.sessions.close(sid)  # the user or token is gone: so is its session
            message = "the session's credentials no longer work"
            await _refuse(send, 401, "unauthorized", message, "log in again", 0, challenge=False)
            return None
        if scope["method"] in MUTATING and not session.is_csrf(headers.get(CSRF_HEADER, "")):
            hint = f"send the session's CSRF token in the {CSRF_HEADER} header (the dashboard does)"
            await _refuse(send, 403, "forbidden", "a change needs the session's CSRF token", hint, 0, challenge=False)
            await self.audit(outcome, scope["method"], scope["path"], 403)
            return None
        return outcome

    def _address(self, scope: Scope, headers: dict[str, str]) -> str:
        if self.door.via_unix:
            return "unix-socket"
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        return client_address(peer, headers.get("x-forwarded-for"), self.door.trusted_proxies)

    def _trusted(self, address: str) -> Identity | None:
        if self.door.require_password:
            return None
        if self.door.via_unix:
            return Identity("local", "socket", address)
        if self.door.trust_loopback and is_localhost(address):
            return Identity("local", "loopback", address)
        return None

    async def _authenticate(self, headers: dict[str, str], address: str, send: Send) -> Identity | None:
        authorization = headers.get("authorization", "")
        outcome = await self.auth.identify(authorization, address) if authorization else None
        if isinstance(outcome, Identity):
            return outcome
        await _refuse_with(send, outcome or Refusal(401, "this API needs credentials"), UI_HEADER not in headers)
        return None

    async def _call_audited(self, scope: Scope, receive: Receive, send: Send, identity: Identity) -> None:
        """Audit every mutating call, and the reads scopes.py marks (a secret reveal), refused or not."""
        status = 500

        async def capture(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if scope["method"] in MUTATING:
                await self.audit(identity, scope["method"], scope["path"], status)
            elif scope["state"].get(AUDIT_READ):
                query = scope.get("query_string", b"").decode("latin-1")
                await self.audit(identity, scope["method"], f"{scope['path']}?{query}", status)


async def _refuse_with(send: Send, refusal: Refusal, challenge: bool = True) -> None:
    if refusal.status == 429:
        wait = int(refusal.retry_after) + 1
        hint = f"wait {wait}s and try again; a token (`roost login`, `roost token create`) is never throttled"
        await _refuse(send, 429, "limit_exceeded", refusal.message, hint, refusal.retry_after)
        return
    hint = "use --token/ROOST_TOKEN, -B/--basic-auth, or `roost login`; locally, the Unix socket"
    await _refuse(send, 401, "unauthorized", refusal.message, hint, 0, challenge)


async def _refuse(
    send: Send, status: int, code: str, message: str, hint: str, retry_after: float, challenge: bool = True
) -> None:
    """`challenge`: a 401 asks for Basic credentials (a browser's login box); the dashboard's page never wants one."""
    body = json.dumps({"error": code, "message": message, "hint": hint}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401 and challenge:
        headers.append((b"www-authenticate", b'Basic realm="roost", charset="UTF-8"'))
    if retry_after:
        headers.append((b"retry-after", str(int(retry_after) + 1).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
