"""App routes: create, list, show, remove, start/stop/restart, logs, domains, events."""

from __future__ import annotations

import asyncio
import json as jsonlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from roost.api.deps import ControlDep, IdentityDep
from roost.api.params import SQLITE_INTEGER_MAX, AppName, AppNameQuery, Host, HostText
from roost.api.schemas import (
    AppCreate,
    AppInfoOut,
    AppOut,
    AppSummaryOut,
    DomainOut,
    EventOut,
    ProcessCounts,
    ScaleChange,
)
from roost.api.scopes import shown_event, visible
from roost.applog import LogLine, LogTail
from roost.control import SuppliedCert
from roost.errors import RequestInvalid
from roost.model import PROCESS_NAME_PATTERN

router = APIRouter(tags=["apps"])
LIMIT_FOLLOW_QUEUE = 10_000
LIMIT_PEM = 64 * 1024  # a chain of a few certificates, or a key
EVENT_POLL_SECONDS = 0.25


class DomainIn(BaseModel):
    """A custom domain for an app. With `cert` and `key` (PEM text) it is served with that
    certificate; else, when the daemon runs ACME, a certificate is obtained before the answer."""

    host: HostText
    cert: str | None = Field(default=None, max_length=LIMIT_PEM, description="PEM certificate chain, leaf first")
    key: str | None = Field(default=None, max_length=LIMIT_PEM, description="PEM private key of the certificate")
    redirect: bool = Field(default=True, description="send plain HTTP requests to HTTPS once a certificate exists")
    hsts: bool = Field(default=False, description="HTTPS answers carry Strict-Transport-Security (one year)")


@router.get("/v1/apps", response_model=list[AppSummaryOut])
async def list_apps(control: ControlDep, identity: IdentityDep) -> list[AppSummaryOut]:
    """Every app (the caller may see) with its state, instances, production deployment, traffic and memory."""
    return [AppSummaryOut.of(s) for s in await control.summaries() if visible(identity, s.app.name)]


@router.post("/v1/apps", response_model=AppOut, status_code=201)
async def create_app(body: AppCreate, control: ControlDep) -> AppOut:
    return AppOut.of(await control.create_app(body.name, body.mode, body.settings))


@router.get("/v1/apps/{name}", response_model=AppInfoOut)
async def show_app(
    name: AppName, control: ControlDep, identity: IdentityDep, events: int = Query(20, ge=0, le=1000)
) -> AppInfoOut:
    shown = AppInfoOut.of(await control.app_details(name, events), control.urls)
    shown.events = [e for e in shown.events if shown_event(identity, e.kind, e.app)]
    return shown


@router.delete("/v1/apps/{name}", status_code=204)
async def delete_app(name: AppName, control: ControlDep) -> Response:
    await control.remove_app(name)
    return Response(status_code=204)


@router.patch("/v1/apps/{name}/scale", response_model=AppOut)
async def set_scale(name: AppName, change: ScaleChange, control: ControlDep) -> AppOut:
    """Change min, max, concurrency or idle_timeout; they stay in force across pushes."""
    return AppOut.of(await control.set_scale(name, change.changes()))


@router.patch("/v1/apps/{name}/processes", response_model=AppOut)
async def set_process_counts(name: AppName, change: ProcessCounts, control: ControlDep) -> AppOut:
    """How many instances of each process type production runs; they stay in force across pushes."""
    return AppOut.of(await control.processes.set_process_counts(name, change.counts))


@router.post("/v1/apps/{name}/stop", status_code=204)
async def stop_app(name: AppName, control: ControlDep) -> Response:
    await control.stop_app(name)
    return Response(status_code=204)


@router.post("/v1/apps/{name}/start", status_code=204)
async def start_app(name: AppName, control: ControlDep) -> Response:
    await control.start_app(name)
    return Response(status_code=204)


@router.post("/v1/apps/{name}/restart", status_code=204)
async def restart_app(name: AppName, control: ControlDep) -> Response:
    await control.restart_app(name)
    return Response(status_code=204)


@router.get("/v1/apps/{name}/logs", response_class=StreamingResponse)
async def logs(
    name: AppName,
    control: ControlDep,
    since: float | None = Query(None, ge=0, description="seconds back from now"),
    deployment: str | None = None,
    follow: bool = False,
    lines: int | None = Query(None, ge=0, description="only the last N kept lines (then new ones, with follow)"),
    kind: Literal["all", "requests", "app"] = Query("all", description="the edge's request lines, the app's, or both"),
    json: bool = Query(False, description="one JSON object per line, request fields parsed out"),
    process: str | None = Query(
        None, pattern=PROCESS_NAME_PATTERN, description="only the output of this process type's instances"
    ),
) -> StreamingResponse:
    """The app's log lines, oldest first; with follow=true, new lines as they come."""
    start = time.time() - since if since is not None else None
    # Follow before reading, so no line falls between the two; the overlap is dropped after.
    tail = LogTail(LIMIT_FOLLOW_QUEUE, deployment) if follow else None
    stop_following = control.logs.follow(name, tail) if tail is not None else None
    try:
        existing = await control.read_logs(name, start, deployment)
    except BaseException:
        if stop_following:
            stop_following()
        raise
    if tail is not None:
        tail.drop_overlap(existing)
    wanted = _selection(kind, process)
    kept = _last(lines, [line for line in existing if wanted(line)])

    stream = _stream(kept, tail, wanted, json, stop_following)
    return StreamingResponse(stream, media_type="application/x-ndjson" if json else "text/plain; charset=utf-8")


async def _stream(
    kept: list[LogLine],
    tail: LogTail | None,
    wanted: Callable[[LogLine], bool],
    as_json: bool,
    stop_following: Callable[[], None] | None,
) -> AsyncIterator[bytes]:
    """The kept lines, then (following) new ones of the kind asked for, until the client leaves."""
    try:
        for line in kept:
            yield _render(line, as_json)
        while tail is not None:
            for line in await tail.take():
                if wanted(line):
                    yield _render(line, as_json)
    finally:
        if stop_following:
            stop_following()


def _render(line: LogLine, as_json: bool) -> bytes:
    return (jsonlib.dumps(line.to_wire()) if as_json else line.render()).encode() + b"\n"


def _last(count: int | None, lines: list[LogLine]) -> list[LogLine]:
    if count is None:
        return lines
    return lines[len(lines) - count :] if count else []


def _selection(kind: str, process: str | None) -> Callable[[LogLine], bool]:
    """Which lines to send: of a kind (all, requests, app), and of one process type when named
    (its instances' lines have the source `NAME/INSTANCE`)."""
    prefix = f"{process}/" if process else None

    def wanted(line: LogLine) -> bool:
        if prefix is not None and not line.source.startswith(prefix):
            return False
        return kind == "all" or line.is_request() == (kind == "requests")

    return wanted


@router.get("/v1/apps/{name}/domains", response_model=list[DomainOut])
async def list_domains(name: AppName, control: ControlDep) -> list[DomainOut]:
    """The app's custom domains, each with its certificate's state."""
    return [DomainOut.of(cert) for cert in await control.domains.list_of(name)]


@router.post("/v1/apps/{name}/domains", response_model=DomainOut, status_code=201)
async def add_domain(name: AppName, body: DomainIn, control: ControlDep) -> DomainOut:
    """Route a domain to the app; with ACME on, answers once its certificate is issued (or refused)."""
    if (body.cert is None) != (body.key is None):
        raise RequestInvalid("cert and key go together", hint="pass both --cert FILE and --key FILE, or neither")
    supplied = SuppliedCert(body.cert.encode(), body.key.encode()) if body.cert and body.key else None
    return DomainOut.of(await control.domains.add(name, body.host, supplied, body.redirect, body.hsts))


@router.delete("/v1/apps/{name}/domains/{host}", status_code=204)
async def remove_domain(name: AppName, host: Host, control: ControlDep) -> Response:
    await control.domains.remove(name, host)
    return Response(status_code=204)


@router.get("/v1/events", response_model=list[EventOut], tags=["events"])
async def list_events(
    control: ControlDep,
    identity: IdentityDep,
    app: AppNameQuery = None,
    after: int = Query(0, ge=0, le=SQLITE_INTEGER_MAX),
    limit: int = Query(50, ge=1, le=1000),
) -> list[EventOut]:
    """Events, oldest first; a caller without admin sees only its apps' (the page may be shorter)."""
    return [EventOut.of(e) for e in await control.events(app, after, limit) if shown_event(identity, e.kind, e.app)]


@router.get("/v1/events/stream", response_class=StreamingResponse, tags=["events"])
async def stream_events(
    control: ControlDep, identity: IdentityDep, app: AppNameQuery = None, last: int = Query(20, ge=0, le=1000)
) -> StreamingResponse:
    """The last events, then every new one as it happens: one JSON object per line."""
    first = await control.events(app, 0, max(last, 1))
    shown = [e for e in first[-last:] if shown_event(identity, e.kind, e.app)] if last else []

    async def lines() -> AsyncIterator[bytes]:
        after = first[-1].id if first else 0
        for event in shown:
            yield (EventOut.of(event).model_dump_json() + "\n").encode()
        while True:
            await asyncio.sleep(EVENT_POLL_SECONDS)
            for event in await control.events(app, after, 1000):
                after = event.id
                if not shown_event(identity, event.kind, event.app):
                    continue
                yield (EventOut.of(event).model_dump_json() + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")
