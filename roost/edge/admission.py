"""Admitting one request: the client's rate, the route (host, then path), the app's own limits
and the traffic split's pick. It only decides; the exchange acts on the answer (a refusal
becomes the edge's short page). Never touches a socket, a slot or a timer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from roost.edge.guard import retry_after
from roost.edge.routes import AppRoute, no_deployment, not_found, resolve_path
from roost.edge.split import choose
from roost.model import DeploymentId

if TYPE_CHECKING:
    from roost.edge.context import EdgeContext
    from roost.edge.request import Request


class Refused:
    """The edge answers itself: `status` with `message` (and a Retry-After)."""

    __slots__ = ("app", "message", "retry_after", "status")

    def __init__(self, status: int, message: str, retry_after: int | None = None, app: AppRoute | None = None) -> None:
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.app = app  # the app when one was found: its limits still bound what follows


class Admitted:
    """The request goes to `deployment` of `app`, as `path` (the app's prefix taken off);
    `cookie` is the sticky split cookie to set on the answer, if any."""

    __slots__ = ("app", "cookie", "deployment", "path", "prefix")

    def __init__(
        self, app: AppRoute, deployment: DeploymentId, path: bytes, prefix: bytes, cookie: bytes | None
    ) -> None:
        self.app = app
        self.deployment = deployment
        self.path = path
        self.prefix = prefix
        self.cookie = cookie


def admit(ctx: EdgeContext, req: Request, rate_key: str, now: float) -> Admitted | Refused:
    """Where `req` goes, or why the edge answers it itself: 429 over the client's rate, 404 for
    no app, 503 for a stopped app or one with nothing to serve, 413 for a declared body over
    the app's limit."""
    wait = ctx.guard.take(rate_key, now)
    if wait:
        return Refused(429, "too many requests", retry_after(wait))
    matched = ctx.match(req.host or b"")
    path, prefix = req.target, b""
    if type(matched) is tuple and not matched[0].private_paths:
        app, deployment = matched  # a host route: the path does not matter
    else:
        found = resolve_path(ctx.routes, matched, req.target.decode("latin-1"), req.internal)
        if found is None:
            return Refused(404, not_found(ctx.routes, (req.host or b"").decode("latin-1")))
        app, deployment = found.app, found.deployment
        if found.prefix:
            path, prefix = found.path.encode("latin-1"), found.prefix.encode("latin-1")
    if app.stopped:
        return Refused(503, "this app is stopped", app=app)
    if req.content_length is not None and req.content_length > app.limit_body:
        return Refused(413, app.body_too_large, app=app)
    cookie = None
    if deployment is None and req.pinned is None:
        deployment, cookie = choose(app.name, app.traffic, req.cookies, prefix, ctx.rng.random)
    elif deployment is None and req.pinned is not None:
        deployment = pinned(app, req.pinned)
    if deployment is None:
        return Refused(503, no_deployment(app), app=app)
    return Admitted(app, deployment, path, prefix, cookie)


def pinned(app: AppRoute, deployment_id: bytes) -> DeploymentId | None:
    """Roost's own request (cron) names the deployment: production's, whatever the split says."""
    deployment = DeploymentId(deployment_id.decode("latin-1"))
    return deployment if deployment in app.deployments else None
