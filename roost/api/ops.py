"""Operations routes: garbage collection, cron status and the admin API's own certificate."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from roost.api.deps import ControlDep
from roost.api.params import AppName
from roost.api.schemas import DomainOut, RecordOut

router = APIRouter(tags=["operations"])


class FreedOut(BaseModel):
    name: str
    bytes: int


class GcOut(RecordOut):
    pruned: list[str]
    venvs: list[FreedOut]
    blobs: list[FreedOut]
    views: list[FreedOut] = Field(description="removed apps' views of the uv cache")
    freed_bytes: int


class CronOut(RecordOut):
    name: str
    schedule: str
    path: str
    public: bool
    next_run: float
    running: bool
    last_run: float | None
    last_status: int | None
    last_seconds: float | None
    last_error: str


@router.post("/v1/gc", response_model=GcOut)
async def gc(control: ControlDep) -> GcOut:
    report = await control.gc()
    return GcOut.read(
        report,
        venvs=[FreedOut(name=n, bytes=b) for n, b in report.venvs],
        blobs=[FreedOut(name=n, bytes=b) for n, b in report.blobs],
        views=[FreedOut(name=n, bytes=b) for n, b in report.views],
    )


@router.get("/v1/apps/{name}/cron", response_model=list[CronOut])
async def cron(name: AppName, control: ControlDep) -> list[CronOut]:
    """The app's cron jobs with their next run (wall time) and last result."""
    runner = control.cron
    return [
        CronOut.read(
            s.job,
            s,
            next_run=runner.wall_time(s.next_at) if runner is not None else s.next_at,
            last_run=s.last_at,
        )
        for s in await control.cron_status(name)
    ]


@router.get("/v1/api-domain", response_model=DomainOut | None)
async def api_domain(control: ControlDep) -> DomainOut | None:
    """The admin API's own name (`roost serve --api-domain`) and its certificate's state; null without one."""
    cert = await control.domains.api_domain()
    return DomainOut.of(cert) if cert is not None else None


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format; the daemon hands the renderer to the app's state."""
    render = request.app.state.metrics
    return Response(render(), media_type="text/plain; version=0.0.4; charset=utf-8")
