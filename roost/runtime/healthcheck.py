"""The health check as one home: `GET <path>` on an instance's own port, straight from the
runtime. The build check, readiness after every start and the liveness check all ask here.

A check never goes through the edge: it takes no slot, counts as no request of the app's
(metrics, autoscaler) and resets no idle timer, so it neither wakes nor keeps awake an app.
With no `[check]` (None), any HTTP answer on `/` passes, as before checks were configurable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from roost.model import HealthCheck
from roost.runtime.process import Child

LIMIT_STATUS_LINE = 1024
POLL_INTERVAL = 0.25  # between attempts while an instance comes up


class NoAnswer(Exception):
    """The check's request got no HTTP status line."""


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One check's verdict, in words: "GET /healthz answered HTTP 500 (expected HTTP 200)"."""

    ok: bool
    detail: str
    status: int | None = None


def check_path(check: HealthCheck | None) -> str:
    return "/" if check is None else check.path


def passes(check: HealthCheck | None, status: int) -> bool:
    """Whether an answer's status is healthy: any status without a `[check]`."""
    return True if check is None else check.accepts(status)


async def http_status(host: str, port: int, path: str, within: float) -> int:
    """`GET path` on host:port; the status code of the answer. Raises OSError (refused, reset),
    TimeoutError or NoAnswer."""
    async with asyncio.timeout(max(0.0, within)):
        reader, writer = await asyncio.open_connection(host, port, limit=LIMIT_STATUS_LINE)
        try:
            request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: roost-check\r\nConnection: close\r\n\r\n"
            writer.write(request.encode("latin-1"))
            await writer.drain()
            try:
                line = await reader.readline()
            except ValueError as exc:  # no line end within the limit
                raise NoAnswer(f"answered a first line longer than {LIMIT_STATUS_LINE} bytes") from exc
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise NoAnswer(f"answered something that is not HTTP: {line[:80]!r}" if line else "closed the connection")
    return int(parts[1])


async def check_once(host: str, port: int, check: HealthCheck | None, within: float) -> CheckOutcome:
    """One attempt, never raising: "answered HTTP 200", "no answer within 5s", "connection refused"."""
    path = check_path(check)
    try:
        status = await http_status(host, port, path, within)
    except TimeoutError:
        return CheckOutcome(False, f"GET {path}: no answer within {within:g}s")
    except ConnectionRefusedError:
        return CheckOutcome(False, f"GET {path}: connection refused")
    except (OSError, NoAnswer) as exc:
        words = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        return CheckOutcome(False, f"GET {path}: {words.lower() if isinstance(exc, OSError) else words}")
    if passes(check, status):
        return CheckOutcome(True, f"GET {path} answered HTTP {status}", status)
    expected = check.expected() if check is not None else "any status"
    return CheckOutcome(False, f"GET {path} answered HTTP {status} (expected {expected})", status)


async def wait_healthy(
    host: str, port: int, check: HealthCheck | None, child: Child | None, deadline: float
) -> CheckOutcome:
    """Ask until the check passes, the process ends or `deadline` (monotonic) passes; the last
    outcome. Without a `[check]` the first attempt decides, as the build check always did."""
    while True:
        left = deadline - time.monotonic()
        within = left if check is None else min(left, check.timeout)
        outcome = await check_once(host, port, check, within)
        if outcome.ok or check is None or (child is not None and not child.is_alive()):
            return outcome
        if time.monotonic() + POLL_INTERVAL >= deadline:
            return outcome
        await asyncio.sleep(POLL_INTERVAL)
