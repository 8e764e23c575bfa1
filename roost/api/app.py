"""The admin API: REST JSON under /v1. HTTP to use case and back, nothing more."""

from __future__ import annotations

import platform
from collections.abc import Callable

from fastapi import FastAPI

from roost import __version__
from roost.api import access, apps, audit, deploys, env, ops, quotas
from roost.api.errors import install_error_handlers
from roost.api.schemas import ErrorOut, HealthOut, VersionOut
from roost.control import Control

# 429: the login throttle (auth.py) and LimitExceeded; 507: a full disk (NoSpace);
# every RoostError status a route can raise
ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut} for status in (400, 401, 404, 409, 422, 429, 503, 507)
}


def create_api(control: Control, metrics: Callable[[], bytes] = lambda: b"") -> FastAPI:
    """Build the FastAPI application over `control`; `metrics` renders /metrics."""
    api = FastAPI(title="Roost admin API", version=__version__, responses=ERRORS)
    api.state.control = control
    api.state.metrics = metrics
    install_error_handlers(api)

    @api.get("/healthz", response_model=HealthOut, tags=["daemon"])
    async def healthz() -> HealthOut:
        return HealthOut(ok=True)

    @api.get("/v1/version", response_model=VersionOut, tags=["daemon"])
    async def version() -> VersionOut:
        return VersionOut(version=__version__, python=platform.python_version())

    api.include_router(apps.router)
    api.include_router(deploys.router)
    api.include_router(access.router)
    api.include_router(env.router)
    api.include_router(ops.router)
    api.include_router(quotas.router)
    api.include_router(audit.router)
    return api
