"""Who may call which route: the one table from each route to the role it needs and where the
request names its app, and the one dependency (`enforce`) that applies it to every call.

`check_routes` makes `create_api` fail if a route is missing from NEEDS, so no route can be
added without a declared requirement. Handlers never check roles; the few that list several
apps filter the list with the caller's grants (`visible`). Never does I/O beyond reading the
request.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Request
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.routing import BaseRoute

from roost.api.auth import AUDIT_KIND, AUDIT_READ, Identity
from roost.errors import AuthError, Forbidden, UsageError
from roost.grants import Grants, Role


class AppFrom(enum.Enum):
    """Where a request names the app it acts on."""

    NONE = "none"  # daemon-wide, or a list the handler filters
    PATH = "path"  # the {name} path parameter
    QUERY = "query"  # the optional ?app= filter; without it the handler filters
    BODY = "body"  # the JSON body's "name" (creating an app)


@dataclass(frozen=True, slots=True)
class Need:
    """What a route needs of the caller. `role` None: any signed-in caller (or anyone, `open`).
    `reveal`: a query flag that turns the read into a secret reveal, which needs deployer and is
    audited. `own_token`: a password user may make a token acting as itself (`roost login`)."""

    role: Role | None
    app_from: AppFrom = AppFrom.NONE
    reveal: str | None = None
    own_token: bool = False
    open: bool = False


OPEN = Need(None, open=True)
SIGNED_IN = Need(None)
ADMIN = Need(Role.ADMIN)
VIEW_APP = Need(Role.VIEWER, AppFrom.PATH)
DEPLOY_APP = Need(Role.DEPLOYER, AppFrom.PATH)
VIEW_LIST = Need(Role.VIEWER)  # the handler shows only the granted apps

NEEDS: dict[tuple[str, str], Need] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/v1/version"): SIGNED_IN,
    ("GET", "/openapi.json"): SIGNED_IN,
    ("GET", "/docs"): SIGNED_IN,
    ("GET", "/docs/oauth2-redirect"): SIGNED_IN,
    ("GET", "/redoc"): SIGNED_IN,
    ("GET", "/metrics"): ADMIN,  # every app's figures; `roost info` shows one app's
    # apps
    ("GET", "/v1/apps"): VIEW_LIST,
    ("POST", "/v1/apps"): Need(Role.DEPLOYER, AppFrom.BODY),
    ("GET", "/v1/apps/{name}"): VIEW_APP,
    ("DELETE", "/v1/apps/{name}"): ADMIN,
    ("PATCH", "/v1/apps/{name}/scale"): DEPLOY_APP,
    ("PATCH", "/v1/apps/{name}/processes"): DEPLOY_APP,
    ("POST", "/v1/apps/{name}/stop"): DEPLOY_APP,
    ("POST", "/v1/apps/{name}/start"): DEPLOY_APP,
    ("POST", "/v1/apps/{name}/restart"): DEPLOY_APP,
    ("GET", "/v1/apps/{name}/logs"): VIEW_APP,
    ("GET", "/v1/apps/{name}/cron"): VIEW_APP,
    ("GET", "/v1/apps/{name}/domains"): VIEW_APP,
    ("POST", "/v1/apps/{name}/domains"): ADMIN,  # a host name is the daemon's to hand out
    ("DELETE", "/v1/apps/{name}/domains/{host}"): ADMIN,
    ("GET", "/v1/events"): Need(Role.VIEWER, AppFrom.QUERY),
    ("GET", "/v1/events/stream"): Need(Role.VIEWER, AppFrom.QUERY),
    # deployments
    ("HEAD", "/v1/blobs/{digest}"): Need(Role.DEPLOYER, AppFrom.QUERY),
    ("PUT", "/v1/blobs/{digest}"): Need(Role.DEPLOYER, AppFrom.QUERY),
    ("POST", "/v1/apps/{name}/deployments"): DEPLOY_APP,
    ("GET", "/v1/apps/{name}/deployments"): VIEW_APP,
    ("GET", "/v1/apps/{name}/deployments/{deployment}"): VIEW_APP,
    ("GET", "/v1/apps/{name}/deployments/{deployment}/log"): VIEW_APP,
    ("POST", "/v1/apps/{name}/promote"): DEPLOY_APP,
    ("POST", "/v1/apps/{name}/rollback"): DEPLOY_APP,
    ("PUT", "/v1/apps/{name}/traffic"): DEPLOY_APP,
    ("GET", "/v1/apps/{name}/aliases"): VIEW_APP,
    ("DELETE", "/v1/apps/{name}/aliases/{alias}"): DEPLOY_APP,
    # env: names and sources to viewers, values to deployers
    ("GET", "/v1/apps/{name}/env"): Need(Role.VIEWER, AppFrom.PATH, reveal="reveal"),
    ("POST", "/v1/apps/{name}/env"): DEPLOY_APP,
    ("POST", "/v1/apps/{name}/env/unset"): DEPLOY_APP,
    # daemon-wide
    ("POST", "/v1/tokens"): Need(Role.ADMIN, own_token=True),
    ("GET", "/v1/tokens"): ADMIN,
    ("DELETE", "/v1/tokens/{name}"): ADMIN,
    ("POST", "/v1/gc"): ADMIN,
    ("GET", "/v1/api-domain"): VIEW_LIST,  # the admin API's own certificate: nothing of any app
    ("GET", "/v1/quotas"): ADMIN,  # every owner's caps and usage
    ("PUT", "/v1/quotas/{pattern}"): ADMIN,
    ("DELETE", "/v1/quotas/{pattern}"): ADMIN,
    ("GET", "/v1/audit"): ADMIN,  # who did what to every app, from where
    ("GET", "/v1/nodes"): ADMIN,  # the cluster's machines and their addresses
    # the dashboard: its page and login are open (nothing secret; login is throttled), the rest
    # as the JSON routes it reads; a session's changes also need its CSRF token (auth.py)
    ("GET", "/ui"): OPEN,
    ("GET", "/ui/"): OPEN,
    ("GET", "/ui/assets/{name}"): OPEN,
    ("POST", "/ui/login"): OPEN,
    ("GET", "/ui/link"): OPEN,  # a one-time secret from `roost ui`
    ("POST", "/ui/links"): ADMIN,  # and only over the Unix socket (the handler checks)
    ("POST", "/ui/logout"): SIGNED_IN,
    ("GET", "/ui/session"): SIGNED_IN,
    ("GET", "/ui/stream"): Need(Role.VIEWER, AppFrom.QUERY),  # rows filtered as GET /v1/apps
    ("GET", "/v1/apps/{name}/charts"): VIEW_APP,
}

_FLAG = TypeAdapter(bool)


def route_keys(route: BaseRoute) -> Iterable[tuple[str, str]]:
    """(method, path) of each way `route` is called; Starlette adds HEAD to its own GET routes."""
    methods = getattr(route, "methods", None) or set()
    path = str(getattr(route, "path", ""))
    return [(m, path) for m in sorted(methods) if isinstance(route, APIRoute) or m != "HEAD"]


def check_routes(routes: Iterable[BaseRoute]) -> None:
    """Raise RuntimeError for a route with no declared need, or one `enforce` cannot reach
    (Starlette's own routes, like /docs, run no FastAPI dependency: they may only be SIGNED_IN)."""
    for route in routes:
        for key in route_keys(route):
            need = NEEDS.get(key)
            if need is None:
                raise RuntimeError(f"{key[0]} {key[1]} has no entry in roost/api/scopes.py NEEDS")
            if not isinstance(route, APIRoute) and need not in (SIGNED_IN, OPEN):
                raise RuntimeError(f"{key[0]} {key[1]} runs no dependency; it cannot need {need.role}")


def refused(need: Need, grants: Grants, app: str | None, revealing: bool) -> Role | None:
    """The role the caller lacks for this call, or None when it may go ahead. Pure."""
    role = Role.DEPLOYER if revealing else need.role
    if role is None:
        return None
    if role is Role.ADMIN:
        return None if grants.admin else role
    if app is None:
        return None if grants.allows_somewhere(role) else role
    return None if grants.allows(role, app) else role


def refusal(identity: Identity, role: Role, app: str | None) -> Forbidden:
    """`needs role deployer on app "blog"; token "ci" has viewer on shop-*`, with who can help."""
    where = f' on app "{app}"' if app else ("" if role is Role.ADMIN else " on some app")
    message = f"needs role {role.value}{where}; {identity.describe()} has {identity.grants.describe()}"
    target = app or "APP"
    if role is Role.ADMIN:
        hint = "ask an admin to do it (the Unix socket's owner is one)"
    elif identity.kind == "password":
        hint = f"ask an admin to grant it: roost user grant {identity.name} {role.value} {target}"
    else:
        hint = f"ask an admin for a token that has it: roost token create NAME --role {role.value} --app {target}"
    return Forbidden(message, hint=hint)


def identity_of(request: Request) -> Identity:
    """The caller the auth middleware let in; none (no middleware in front) is refused."""
    identity = request.scope.get("state", {}).get("identity")
    if not isinstance(identity, Identity):
        raise AuthError("this API needs credentials", hint="it runs behind roost/api/auth.py's middleware")
    return identity


async def enforce(request: Request) -> None:
    """The dependency of every route: refuse (403) a caller whose grants lack the route's need."""
    route = request.scope.get("route")
    need = NEEDS.get((request.method, str(getattr(route, "path", ""))))
    if need is None:
        raise Forbidden("this route declares no requirement, so nobody may call it", hint="report it as a bug")
    if need.open:
        return
    identity = identity_of(request)
    revealing = need.reveal is not None and _flag(request.query_params.get(need.reveal))
    if revealing:
        request.scope["state"][AUDIT_READ] = True  # audited even when refused
    app = await _app_named(request, need.app_from)
    if need.own_token and identity.kind == "password":
        return  # a user may ask for a token of its own; `token_grants` decides what it may have
    role = refused(need, identity.grants, app, revealing)
    if role is not None:
        raise refusal(identity, role, app)


def visible(identity: Identity, app: str | None) -> bool:
    """Whether a listed item of `app` (None: daemon-wide) may be shown to `identity`."""
    if identity.grants.admin:
        return True
    return app is not None and identity.grants.allows(Role.VIEWER, app)


def shown_event(identity: Identity, kind: str, app: str | None) -> bool:
    """Daemon-wide events and the audit (api.call) are for admins; the rest for the app's viewers."""
    return identity.grants.admin or (kind != AUDIT_KIND and visible(identity, app))


def token_grants(identity: Identity, asked: Grants | None, own: bool) -> tuple[Grants, str | None]:
    """What a new token may do, and the password user it acts for. `own` (`roost login`): a
    password user's own token, with the user's grants of the moment. Otherwise only an admin
    makes tokens, with `asked` (default admin)."""
    if own:
        if identity.kind != "password":
            raise UsageError("only a user logged in with a password has a token of its own", hint="use --role/--app")
        if asked is not None:
            raise UsageError("a user's own token has the user's grants", hint="leave out --role and --app")
        return identity.grants, identity.name
    if not identity.grants.admin:
        raise refusal(identity, Role.ADMIN, None)
    return (asked if asked is not None else Grants(admin=True)), None


def _flag(value: str | None) -> bool:
    if value is None:
        return False
    try:
        return _FLAG.validate_python(value)
    except ValidationError:
        return True  # not a boolean: the handler answers 422; count it as an attempt


async def _app_named(request: Request, source: AppFrom) -> str | None:
    if source is AppFrom.PATH:
        return str(request.path_params.get("name", ""))
    if source is AppFrom.QUERY:
        return request.query_params.get("app")
    if source is AppFrom.BODY:
        try:
            body = await request.json()
        except ValueError:
            return ""
        name = body.get("name") if isinstance(body, dict) else None
        return name if isinstance(name, str) else ""
    return None
