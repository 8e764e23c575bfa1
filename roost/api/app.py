"""The admin API: REST JSON under /v1. HTTP to use case and back, nothing more."""

from __future__ import annotations

import platform

from fastapi import FastAPI, Query, Response

from roost import __version__
from roost.api.errors import install_error_handlers
from roost.api.schemas import AppCreate, AppInfoOut, AppOut, ErrorOut, EventOut, HealthOut, VersionOut
from roost.control import Control

ERRORS: dict[int | str, dict[str, object]] = {status: {"model": ErrorOut} for status in (400, 401, 404, 409, 422, 503)}


def create_api(control: Control) -> FastAPI:
    """Build the FastAPI application over `control`."""
    api = FastAPI(title="Roost admin API", version=__version__, responses=ERRORS)
    install_error_handlers(api)

    @api.get("/healthz", response_model=HealthOut, tags=["daemon"])
    async def healthz() -> HealthOut:
        return HealthOut(ok=True)

    @api.get("/v1/version", response_model=VersionOut, tags=["daemon"])
    async def version() -> VersionOut:
        return VersionOut(version=__version__, python=platform.python_version())

    @api.get("/v1/apps", response_model=list[AppOut], tags=["apps"])
    async def list_apps() -> list[AppOut]:
        return [AppOut.of(app) for app in await control.list_apps()]

    @api.post("/v1/apps", response_model=AppOut, status_code=201, tags=["apps"])
    async def create_app(body: AppCreate) -> AppOut:
        return AppOut.of(await control.create_app(body.name, body.mode, body.settings))

    @api.get("/v1/apps/{name}", response_model=AppInfoOut, tags=["apps"])
    async def show_app(name: str, events: int = Query(20, ge=0, le=1000)) -> AppInfoOut:
        return AppInfoOut.of(await control.app_details(name, events))

    @api.delete("/v1/apps/{name}", status_code=204, tags=["apps"])
    async def delete_app(name: str) -> Response:
        await control.remove_app(name)
        return Response(status_code=204)

    @api.get("/v1/events", response_model=list[EventOut], tags=["events"])
    async def list_events(
        app: str | None = None, after: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=1000)
    ) -> list[EventOut]:
        return [EventOut.of(e) for e in await control.events(app, after, limit)]

    return api
