"""The admin API as one ASGI application: REST JSON under /v1. HTTP to use case and back, nothing more."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Depends, FastAPI
from starlette.routing import BaseRoute

from roost import __version__
from roost.api import access, apps, audit, deploys, env, live, nodes, ops, quotas, ui
from roost.api.auth import Authenticator
from roost.api.errors import install_error_handlers
from roost.api.live import Charts, EventFeed
from roost.api.nodes import ClusterView
from roost.api.schemas import ErrorOut, HealthOut, VersionOut
from roost.api.scopes import check_routes, enforce
from roost.api.session import SessionBook
from roost.control import Control

# 403: a role the caller lacks (scopes.py); 429: the login throttle (auth.py) and LimitExceeded;
# 507: a full disk (NoSpace); every RoostError status a route can raise
ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 422, 429, 503, 507)
}


ROUTERS = (
    apps.router,
    deploys.router,
    access.router,
    env.router,
    ops.router,
    quotas.router,
    audit.router,
    nodes.router,
    live.router,
    ui.router,
)


@dataclass(frozen=True, slots=True)
class Dashboard:
    """What the dashboard's routes need beyond Control: the daemon's sessions, its password and
    token checks (the same Authenticator as the middleware's, so one throttle), the metrics
    history, the event feed and the admin API's own address (for `roost ui`'s link)."""

    authenticator: Authenticator | None = None
    sessions: SessionBook = field(default_factory=SessionBook)
    charts: Charts | None = None
    feed: EventFeed = field(default_factory=EventFeed)
    url: str = ""


def create_api(
    control: Control,
    metrics: Callable[[], bytes] = lambda: b"",
    dashboard: Dashboard | None = None,
    cluster: ClusterView | None = None,
) -> FastAPI:
    """Build the FastAPI application over `control`; `metrics` renders /metrics; `cluster` is the
    cluster head's view (None: not a head). Every route runs `enforce` (scopes.py) first; a route
    without a declared need stops this from starting."""
    api = FastAPI(title="Roost admin API", version=__version__, responses=ERRORS, dependencies=[Depends(enforce)])
    api.state.control = control
    api.state.metrics = metrics
    api.state.cluster = cluster
    dashboard = dashboard or Dashboard()
    api.state.authenticator = dashboard.authenticator
    api.state.sessions = dashboard.sessions
    api.state.charts = dashboard.charts
    api.state.feed = dashboard.feed
    api.state.ui_url = dashboard.url
    install_error_handlers(api)

    @api.get("/healthz", response_model=HealthOut, tags=["daemon"])
    async def healthz() -> HealthOut:
        return HealthOut(ok=True)

    @api.get("/v1/version", response_model=VersionOut, tags=["daemon"])
    async def version() -> VersionOut:
        return VersionOut(version=__version__, python=platform.python_version())

    for router in ROUTERS:
        api.include_router(router)
    check_routes(served_routes(api))
    return api


def served_routes(api: FastAPI) -> list[BaseRoute]:
    """Every route `api` answers: its own and its routers' (FastAPI may keep those nested)."""
    return [*api.routes, *(route for router in ROUTERS for route in router.routes)]
