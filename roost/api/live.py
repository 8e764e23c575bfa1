"""What the dashboard watches live: one server-sent-events stream per page (the overview's rows
with their rates, new events as they are stored, an app's log lines as they are written, its
charts) and the last hour's chart of an app. Fed by the daemon's own sources: the store's event
hook (EventFeed), the log book's followers and the metrics history; nothing here polls a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field

from roost.api.auth import Identity
from roost.api.deps import ControlDep, IdentityDep
from roost.api.params import AppName, AppNameQuery
from roost.api.schemas import AppSummaryOut, EventOut, RecordOut, TrafficOut
from roost.api.scopes import shown_event, visible
from roost.applog import LogLine, LogTail
from roost.control import Control
from roost.model import Event

router = APIRouter(tags=["dashboard"])
TICK_SECONDS = 2.0  # the overview's rows and an app's chart are sent again this often
LIMIT_FEED_QUEUE = 1000  # events a slow page may fall behind before it misses some
LIMIT_LOG_QUEUE = 2000
LOG_BACKLOG = 200  # lines of the last hour sent when an app's page opens


class Charts(Protocol):
    """The daemon's metrics history (roost/history.py), as the API sees it."""

    def chart(self, app: str, now: float, memory: Mapping[str, int] | None = None) -> Sequence[object]: ...
    def rates(self, app: str, now: float) -> object: ...


class EventFeed:
    """Every stored event, handed to each open stream: `publish` is the store's on_event hook."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Event]] = set()

    def publish(self, event: Event) -> None:
        for queue in self._queues:
            with contextlib.suppress(asyncio.QueueFull):  # a page that stopped reading misses events
                queue.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(LIMIT_FEED_QUEUE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._queues.discard(queue)


class RatesOut(RecordOut):
    rps: float = Field(description="requests per second over the last half minute or so")
    p95: float | None = Field(description="seconds")
    error_rate: float | None = Field(description="share of 5xx answers")


class OverviewRowOut(AppSummaryOut):
    rates: RatesOut


OverviewRowOut.model_rebuild(_types_namespace={"TrafficOut": TrafficOut})  # the parent's forward reference


class ChartPointOut(RecordOut):
    at: float
    requests: list[float] = Field(description="per second, by status class 1xx..5xx")
    p50: float | None
    p95: float | None
    starts: list[int] = Field(description="cold, warm and hot starts in the interval")
    instances: int
    memory: int


@router.get("/v1/apps/{name}/charts", response_model=list[ChartPointOut])
async def charts(name: AppName, request: Request, control: ControlDep) -> list[ChartPointOut]:
    """The last hour of the app's figures, one point per ten seconds, the live moment last."""
    await control.app_details(name, 0)  # 404 for an unknown app
    return _chart(request, name)


@router.get("/ui/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    control: ControlDep,
    identity: IdentityDep,
    app: AppNameQuery = None,
    logs: bool = Query(True, description="with app: its log lines too"),
) -> StreamingResponse:
    """Server-sent events: `overview` (every app's row) and, with `app`, `chart`, each
    TICK_SECONDS; `event` for every new event; `log` for each of the app's log lines."""
    feed: EventFeed = request.app.state.feed
    queue = feed.subscribe()
    tail = LogTail(LIMIT_LOG_QUEUE) if app and logs else None
    stop_following = control.logs.follow(app, tail) if app and tail is not None else None
    try:
        backlog = await control.read_logs(app, time.time() - 3600, None) if app and tail is not None else []
    except BaseException:
        feed.unsubscribe(queue)
        if stop_following:
            stop_following()
        raise
    if tail is not None:
        tail.drop_overlap(backlog)
    frames = _frames(request, control, identity, app, queue, tail, backlog[-LOG_BACKLOG:])

    async def closing() -> AsyncIterator[bytes]:
        try:
            async for frame in frames:
                yield frame
        finally:
            feed.unsubscribe(queue)
            if stop_following:
                stop_following()

    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(closing(), media_type="text/event-stream", headers=headers)


async def _frames(
    request: Request,
    control: Control,
    identity: Identity,
    app: str | None,
    queue: asyncio.Queue[Event],
    tail: LogTail | None,
    backlog: list[LogLine],
) -> AsyncIterator[bytes]:
    """The stream's frames until the page leaves: the first tick, the log backlog, then whatever comes."""
    for frame in await _tick(request, control, identity, app):
        yield frame
    for line in backlog:
        yield _frame("log", line.to_wire())
    waits: dict[str, asyncio.Task[object]] = {}
    next_tick = time.monotonic() + TICK_SECONDS
    try:
        while True:
            if "event" not in waits:
                waits["event"] = asyncio.ensure_future(queue.get())
            if tail is not None and "log" not in waits:
                waits["log"] = asyncio.ensure_future(tail.take())
            await asyncio.wait(
                waits.values(), timeout=max(0.0, next_tick - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
            for frame in _ready_frames(waits, identity, app):
                yield frame
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK_SECONDS
                for frame in await _tick(request, control, identity, app):
                    yield frame
    finally:
        for task in waits.values():
            task.cancel()


def _ready_frames(waits: dict[str, asyncio.Task[object]], identity: Identity, app: str | None) -> list[bytes]:
    """The frames of the waits that finished (each is forgotten, so the loop waits again)."""
    frames: list[bytes] = []
    for key, task in list(waits.items()):
        if not task.done():
            continue
        del waits[key]
        result = task.result()
        if isinstance(result, Event) and (app is None or result.app == app):
            if shown_event(identity, result.kind, result.app):
                frames.append(_frame("event", EventOut.of(result).model_dump()))
        elif isinstance(result, list):
            frames.extend(_frame("log", line.to_wire()) for line in result if isinstance(line, LogLine))
    return frames


async def _tick(request: Request, control: Control, identity: Identity, app: str | None) -> list[bytes]:
    charts: Charts | None = request.app.state.charts
    now = time.time()
    summaries = [s for s in await control.summaries() if visible(identity, s.app.name)]
    rows = [
        OverviewRowOut(**AppSummaryOut.of(s).model_dump(), rates=_rates(charts, s.app.name, now)) for s in summaries
    ]
    frames = [_frame("overview", [row.model_dump() for row in rows])]
    if app is not None:
        memory = {str(s.app.name): s.memory for s in summaries}  # just measured: the chart agrees with the row
        frames.append(_frame("chart", [point.model_dump() for point in _chart(request, app, memory)]))
    return frames


def _chart(request: Request, app: str, memory: Mapping[str, int] | None = None) -> list[ChartPointOut]:
    charts: Charts | None = request.app.state.charts
    if charts is None:
        return []
    return [ChartPointOut.read(point) for point in charts.chart(app, time.time(), memory)]


def _rates(charts: Charts | None, app: str, now: float) -> RatesOut:
    if charts is None:
        return RatesOut(rps=0.0, p95=None, error_rate=None)
    return RatesOut.read(charts.rates(app, now))


def _frame(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
