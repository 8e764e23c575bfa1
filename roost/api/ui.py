"""The dashboard's door: its static page, login (password or token) and logout, and the one-time
login link of `roost ui`. Turns credentials into a session (session.py); the auth middleware
checks the session on every later request. Never a second way to a use case: the page calls the
same JSON routes as the CLI.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from roost.api.auth import Authenticator, Identity, Refusal, session_id
from roost.api.deps import ControlDep, IdentityDep
from roost.api.session import COOKIE, Login, SessionBook
from roost.errors import AuthError, Forbidden, LimitExceeded, RequestInvalid, Unavailable

router = APIRouter(tags=["dashboard"])
STATIC = Path(__file__).with_name("static")
ASSETS = {"app.js": "text/javascript", "style.css": "text/css", "icon.svg": "image/svg+xml"}
# The page runs only its own script and style, talks only to this origin, and is never framed;
# the link's secret must not leave in a Referer.
HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class LoginIn(BaseModel):
    user: str = Field("", max_length=256)
    password: str = Field("", max_length=1024)
    token: str = Field("", max_length=1024, description="instead of user and password")


class SessionOut(BaseModel):
    name: str
    kind: str = Field(description='"password", "token", "link" (`roost ui`), or how the caller got in without one')
    access: str = Field(description="what it may do, in words")
    admin: bool
    csrf: str = Field(description="send it in the X-CSRF-Token header on every change; empty without a session")


class LinkOut(BaseModel):
    url: str = Field(description="open it once within two minutes")


@router.get("/ui", include_in_schema=False)
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=308)


@router.get("/ui/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/ui/assets/{name}", include_in_schema=False)
async def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise RequestInvalid(f"no dashboard asset {name!r}", hint="the page names its assets itself")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)


@router.post("/ui/login", response_model=SessionOut)
async def login(body: LoginIn, request: Request, control: ControlDep) -> JSONResponse:
    """A password (throttled, as every password) or a token in exchange for a session cookie."""
    _same_origin(request)
    auth: Authenticator | None = request.app.state.authenticator
    if auth is None:
        raise Unavailable("this API has no login", hint="it was started without the dashboard's wiring")
    address = str(request.scope.get("state", {}).get("address", ""))
    if body.token:
        outcome = await auth.identify(f"Bearer {body.token}", address)
        kind: Literal["token", "password"] = "token"
    else:
        outcome = await auth.login(body.user, body.password, address)
        kind = "password"
    if isinstance(outcome, Refusal):
        error = _refusal(outcome)
        wait = {"retry-after": str(int(outcome.retry_after) + 1)} if outcome.status == 429 else {}
        return JSONResponse(error.to_wire(), status_code=error.status, headers=wait)
    sessions: SessionBook = request.app.state.sessions
    sid, session = sessions.open(Login(kind, outcome.name, body.token), time.time())
    await control.audit.record(outcome, "POST", "/ui/login", 200, action="session.login")  # who, from where
    response = JSONResponse(_described(outcome, session.csrf).model_dump())
    _set_cookie(response, request, sid)
    return response


@router.post("/ui/logout", status_code=204)
async def logout(request: Request) -> Response:
    """End the session on the server (its cookie is worthless from now on) and clear the cookie."""
    sessions: SessionBook = request.app.state.sessions
    sessions.close(session_id({"cookie": request.headers.get("cookie", "")}))
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/ui/session", response_model=SessionOut)
async def current(request: Request, identity: IdentityDep) -> SessionOut:
    """Who the page acts as, and the CSRF token its changes must carry."""
    sessions: SessionBook = request.app.state.sessions
    session = sessions.get(session_id({"cookie": request.headers.get("cookie", "")}), time.time())
    return _described(identity, session.csrf if session else "")


@router.post("/ui/links", response_model=LinkOut, status_code=201)
async def issue_link(request: Request, identity: IdentityDep) -> LinkOut:
    """`roost ui`: a one-time login link, for the Unix socket's owner only."""
    if identity.kind != "socket":
        raise Forbidden("only the Unix socket's owner gets a login link", hint="run `roost ui` on the server")
    sessions: SessionBook = request.app.state.sessions
    secret = sessions.issue_link(time.time())
    return LinkOut(url=f"{request.app.state.ui_url}/ui/link?secret={secret}")


@router.get("/ui/link", include_in_schema=False)
async def redeem_link(request: Request, control: ControlDep, secret: str = "") -> Response:
    """Spend a one-time link: a session as the socket's owner, then the overview."""
    sessions: SessionBook = request.app.state.sessions
    if not sessions.redeem_link(secret, time.time()):
        raise AuthError("this login link is used up or too old", hint="run `roost ui` again for a new one")
    sid, _ = sessions.open(Login("link", "local"), time.time())
    address = str(request.scope.get("state", {}).get("address", ""))
    await control.audit.record(Identity("local", "link", address), "GET", "/ui/link", 303, action="session.login")
    response = RedirectResponse("/ui/", status_code=303, headers={"referrer-policy": "no-referrer"})
    _set_cookie(response, request, sid)
    return response


def _described(identity: Identity, csrf: str) -> SessionOut:
    grants = identity.grants
    return SessionOut(name=identity.name, kind=identity.kind, access=grants.describe(), admin=grants.admin, csrf=csrf)


def _set_cookie(response: Response, request: Request, sid: str) -> None:
    """HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it), Secure over TLS."""
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, sid, path="/", httponly=True, samesite="strict", secure=secure)


def _same_origin(request: Request) -> None:
    """A login posted by another site's page is refused (login CSRF), when the browser says so."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Forbidden("a login from another site's page", hint="log in from the dashboard's own page")


def _refusal(refusal: Refusal) -> AuthError | LimitExceeded:
    if refusal.status == 429:
        return LimitExceeded(refusal.message, hint=f"wait {int(refusal.retry_after) + 1}s and try again")
    return AuthError(refusal.message, hint="check the user and password, or the token")
