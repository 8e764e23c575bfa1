"""Streams and slow clients through a real `roost serve` (issues 18 and 19): an SSE stream runs
past `limits.timeout` to its end, a stalled one is cut at `limits.stream_idle` and a long one at
`limits.stream_max`, neither recycling its instance; a flood of clients trickling their heads and
bodies starts or recycles nothing while a normal client keeps being answered; the 413 page names
the limit and its setting.

One daemon for the module, two copies of a tiny ASGI app: `ticks` with the default limits and
`short` with small ones (and room to scale, so that held slots would show as extra instances).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.apps import get, info, pushed, ready_instances, wait_until, write_app
from tests.e2e.harness import Daemon, running

APP_PY = """\
import asyncio
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/events":  # an SSE stream: n events, `every` seconds apart
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for n in range(int(query.get("n", "3"))):
            await send({"type": "http.response.body", "body": b"data: %d\\n\\n" % n, "more_body": True})
            await asyncio.sleep(float(query.get("every", "1")))
        await send({"type": "http.response.body", "body": b"event: end\\ndata: done\\n\\n"})
        return
    if scope["path"] == "/stall":  # two events, then silence
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for n in range(2):
            await send({"type": "http.response.body", "body": b"data: %d\\n\\n" % n, "more_body": True})
        await asyncio.sleep(600)
        await send({"type": "http.response.body", "body": b""})
        return
    text = b"pid %d body %d" % (os.getpid(), len(body))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(text))]})
    await send({"type": "http.response.body", "body": text})
"""
TICKS = "ticks"  # the default limits: timeout 5s, stream_idle 60s, stream_max 1h
SHORT = "short"
STREAM_IDLE = 2.0
STREAM_MAX = 6.0
SHORT_TOML = f"""\
name = "{SHORT}"
entrypoint = "app:app"
mode = "service"
[scale]
min = 1
max = 3
concurrency = 4
[limits]
timeout = "2s"
stream_idle = "{STREAM_IDLE:g}s"
stream_max = "{STREAM_MAX:g}s"
body = "1M"
"""
EVENTS = 12  # a second apart: past the default 5 s timeout, well within the default 60 s idle limit
SLOW_BODIES = 60
SLOW_HEADS = 40
FLOOD_SECONDS = 12.0  # past limits.timeout (2 s) plus the edge's grace before a recycle (5 s)
TRICKLE_EVERY = 1.0
INSTANCE_CHANGES = ("instance.started", "instance.draining", "instance.stopped", "instance.crashed")


class Module:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Module]:
    root = tmp_path_factory.mktemp("streams")
    home = root / "home"
    home.mkdir()
    with running(home) as daemon:
        pushed(
            daemon,
            write_app(root, TICKS, {"roost.toml": f'name = "{TICKS}"\nentrypoint = "app:app"\n', "app.py": APP_PY}),
        )
        pushed(daemon, write_app(root, SHORT, {"roost.toml": SHORT_TOML, "app.py": APP_PY}))
        wait_until("short's instance", lambda: ready_instances(daemon, SHORT))
        yield Module(daemon)


def host(app: str) -> str:
    return f"{app}.localhost"


def pids(daemon: Daemon, app: str) -> set[int]:
    return {i["pid"] for i in info(daemon, app)["instances"]}


def last_event_id(daemon: Daemon) -> int:
    with daemon.api() as api:
        events = api.get("/v1/events", params={"limit": 1}).json()
    return max((e["id"] for e in events), default=0)


def instance_events_since(daemon: Daemon, app: str, since: int) -> list[str]:
    with daemon.api() as api:
        events: list[dict[str, Any]] = api.get("/v1/events", params={"app": app, "limit": 500}).json()
    return [f"{e['kind']}: {e['message']}" for e in events if e["id"] > since and e["kind"] in INSTANCE_CHANGES]


def read_events(daemon: Daemon, app: str, path: str) -> tuple[list[str], bool, float]:
    """The SSE data lines of one GET, whether the stream ended cleanly, and the seconds it took."""
    lines: list[str] = []
    started = time.monotonic()
    try:
        with httpx.stream("GET", f"{daemon.edge_url}{path}", headers={"Host": host(app)}, timeout=30) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    lines.append(line[6:])
    except httpx.RemoteProtocolError:  # the edge cut the stream: no last chunk
        return lines, False, time.monotonic() - started
    return lines, True, time.monotonic() - started


# --- streams ---------------------------------------------------------------------------------------


def test_an_sse_stream_runs_past_the_timeout_to_its_end(streams: Module) -> None:
    daemon = streams.daemon
    assert get(daemon, host(TICKS)).status_code == 200  # an instance, before we watch it
    before, since = pids(daemon, TICKS), last_event_id(daemon)
    lines, clean, took = read_events(daemon, TICKS, f"/events?n={EVENTS}&every=1")
    assert clean, f"cut after {took:.1f}s and {len(lines)} events"
    assert lines == [str(n) for n in range(EVENTS)] + ["done"]
    assert took > 5  # past limits.timeout
    assert pids(daemon, TICKS) == before
    assert instance_events_since(daemon, TICKS, since) == []


def test_a_stalled_stream_is_cut_at_the_idle_limit_and_its_instance_kept(streams: Module) -> None:
    daemon = streams.daemon
    before, since = pids(daemon, SHORT), last_event_id(daemon)
    lines, clean, took = read_events(daemon, SHORT, "/stall")
    assert not clean
    assert lines == ["0", "1"]
    assert took >= STREAM_IDLE * 0.9
    answer = get(daemon, host(SHORT))
    assert answer.status_code == 200
    assert int(answer.text.split()[1]) in before  # the same process answers
    assert wait_until_quiet(daemon, SHORT, before, since)


def test_a_long_stream_is_cut_at_its_maximum_and_its_instance_kept(streams: Module) -> None:
    daemon = streams.daemon
    before, since = pids(daemon, SHORT), last_event_id(daemon)
    lines, clean, took = read_events(daemon, SHORT, "/events?n=1000&every=0.5")
    assert not clean
    assert took >= STREAM_MAX * 0.9
    assert STREAM_MAX < len(lines) < 1000  # it ran past limits.timeout and past stream_idle, then was cut
    assert wait_until_quiet(daemon, SHORT, before, since)


def wait_until_quiet(daemon: Daemon, app: str, before: set[int], since: int) -> bool:
    """The instances are the same processes, and no instance event came since `since`, even after
    the edge's grace before a recycle (5 s) has passed: polled for that long."""
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:
        assert instance_events_since(daemon, app, since) == []
        assert pids(daemon, app) == before
        time.sleep(0.5)
    return True


# --- the settings and the 413 page ---


def test_roost_info_shows_the_three_time_limits(streams: Module) -> None:
    result = streams.daemon.cli("info", SHORT)
    assert result.returncode == 0, result.stderr
    for key, value in (("timeout", "2s"), ("stream_idle", "2s"), ("stream_max", "6s")):
        assert re.search(rf"limits\.{key}\W+{value}\W+roost\.toml", result.stdout), result.stdout
    ticks = streams.daemon.cli("info", TICKS)
    for key, value in (("timeout", "5s"), ("stream_idle", "1m"), ("stream_max", "1h")):
        assert re.search(rf"limits\.{key}\W+{value}\W+default", ticks.stdout), ticks.stdout


# --- the 413 page ----------------------------------------------------------------------------------


def test_the_413_page_names_the_limit_and_the_setting(streams: Module) -> None:
    daemon = streams.daemon
    response = httpx.post(
        f"{daemon.edge_url}/", headers={"Host": host(SHORT)}, content=b"x" * (1024 * 1024 + 1), timeout=30
    )
    assert response.status_code == 413
    assert response.text.startswith(
        "413 request body larger than the app's limit of 1 MB (limits.body = 1M in roost.toml)\n"
    )


# --- slow clients ----------------------------------------------------------------------------------


class Trickle(threading.Thread):
    """Raw-socket clients that send their request a byte at a time, TRICKLE_EVERY apart: some
    their head (slowloris), some their body. Each one that is closed connects again, until
    `seconds` have passed. Counts what the edge answered them."""

    def __init__(self, port: int, bodies: int, heads: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.bodies = bodies
        self.heads = heads
        self.end = time.monotonic() + seconds
        self.connections = 0
        self.answers: list[bytes] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._flood())
        except Exception as exc:  # noqa: BLE001 - reported by the test (its assertions name it)
            self.error = exc

    async def _flood(self) -> None:
        body_head = f"POST / HTTP/1.1\r\nHost: {host(SHORT)}\r\nContent-Length: 100\r\n\r\n".encode()
        head = f"GET / HTTP/1.1\r\nHost: {host(SHORT)}\r\nX-Slow: ".encode() + b"s" * 100
        clients = [self._client(body_head, b"b" * 100) for _ in range(self.bodies)]
        clients += [self._client(b"", head) for _ in range(self.heads)]
        await asyncio.gather(*clients)

    async def _client(self, first: bytes, trickled: bytes) -> None:
        while time.monotonic() < self.end:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.connections += 1
            read = asyncio.ensure_future(reader.read(65536))
            try:
                writer.write(first)
                for byte in trickled:
                    done, _ = await asyncio.wait({read}, timeout=TRICKLE_EVERY)
                    if done or time.monotonic() > self.end:
                        break
                    writer.write(bytes([byte]))
                    await writer.drain()
                if read.done() and read.result():
                    self.answers.append(read.result()[:12])
            except ConnectionError:
                pass
            finally:
                read.cancel()
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()


def test_a_slow_body_and_slow_head_flood_starts_and_recycles_nothing(streams: Module) -> None:
    daemon = streams.daemon
    before, since = pids(daemon, SHORT), last_event_id(daemon)
    assert len(before) == 1
    flood = Trickle(daemon.edge_port, SLOW_BODIES, SLOW_HEADS, FLOOD_SECONDS)
    flood.start()
    answered = 0
    try:
        while flood.is_alive():
            response = get(daemon, host(SHORT))
            assert response.status_code == 200, response.text
            assert int(response.text.split()[1]) in before
            answered += 1
    finally:
        flood.join(timeout=FLOOD_SECONDS + 30)
    assert flood.error is None, repr(flood.error)
    assert flood.connections >= SLOW_BODIES + SLOW_HEADS
    assert answered > 0
    assert [a for a in flood.answers if b" 504 " in a] == []  # never the app's timeout for a slow client
    assert instance_events_since(daemon, SHORT, since) == []
    assert pids(daemon, SHORT) == before
