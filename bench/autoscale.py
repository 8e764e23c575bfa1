"""Autoscaler step response: 0 -> 200 concurrent clients on an endpoint that takes 50 ms, with a
target concurrency of 10 per instance (so 20 instances are wanted), against a real `roost serve`.
The function starts asleep: no instance is running when the step comes.

Prints the time until 20 instances are ready, the share of requests that waited in the activator
queue (exact: their X-Roost-Start is not "hot", so no slot was free when they came), and the p99
of that wait. The edge exposes no per-request queue time, so the wait is measured end to end
instead: the endpoint returns the wall-clock time at which its handler began, and the wait is that
minus the time the client sent the request. It therefore also holds the edge's forwarding and the
instance's accept; the same figure for requests that did not wait is printed beside it as the
floor of that overhead.

Run: .venv/bin/python bench/autoscale.py [SECONDS_OF_LOAD]
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import EXAMPLE, serve, stop, workdir

CLIENTS = 200
TARGET = 10
WANTED = CLIENTS // TARGET
LOAD_SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
PATH = "/stamped?ms=50"
HOST = "stepped.localhost"
STAMPED = """

import time as _time


@app.get("/stamped")
async def stamped(ms: int = 50) -> dict[str, float]:
    received = _time.time()  # when the handler began: the end of any wait before it
    await asyncio.sleep(ms / 1000)
    return {"received": received}
"""


@dataclass(frozen=True, slots=True)
class Result:
    status: int
    start: str  # X-Roost-Start: "hot" took a free slot at once; "warm" or "cold" waited in the activator
    before_handler: float  # seconds from sending the request to the handler beginning (NaN on errors)


class Connection:
    """One keep-alive HTTP/1.1 connection to the edge: a request, then its whole answer.
    (httpx's pool costs more CPU than the edge itself at this load on two cores.)"""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def get(self, path: str, host: str) -> Result:
        sent = time.time()
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        received = json.loads(body)["received"] if status == 200 else float("nan")
        return Result(status, headers.get("x-roost-start", ""), received - sent)

    def close(self) -> None:
        self.writer.close()


async def client(port: int, until: float, results: list[Result]) -> None:
    connection = await Connection.open(port)
    try:
        while time.monotonic() < until:
            results.append(await connection.get(PATH, HOST))
    finally:
        connection.close()


async def count_instances(
    api: httpx.AsyncClient, app: str, t0: float, until: float, seen: list[tuple[float, int]]
) -> None:
    while time.monotonic() < until:
        details = (await api.get(f"/v1/apps/{app}", params={"events": 0})).json()
        ready = sum(1 for i in details["instances"] if i["state"] == "ready")
        seen.append((time.monotonic() - t0, ready))
        await asyncio.sleep(0.1)


async def asleep(api: httpx.AsyncClient, app: str) -> None:
    """Wait until the function has no instance at all (the build check's is gone), so the step
    starts from zero."""
    deadline = time.monotonic() + 60
    while True:
        details = (await api.get(f"/v1/apps/{app}", params={"events": 0})).json()
        if not [i for i in details["instances"] if i["state"] in ("starting", "ready", "draining")]:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{app} still has instances: {details['instances']}")
        await asyncio.sleep(0.1)


async def step(edge_port: int, home: Path) -> tuple[list[Result], list[tuple[float, int]]]:
    transport = httpx.AsyncHTTPTransport(uds=str(home / "roost.sock"))
    async with httpx.AsyncClient(transport=transport, base_url="http://roost", timeout=30) as api:
        await asleep(api, "stepped")
        results: list[Result] = []
        seen: list[tuple[float, int]] = []
        t0 = time.monotonic()
        until = t0 + LOAD_SECONDS
        await asyncio.gather(
            count_instances(api, "stepped", t0, until, seen),
            *(client(edge_port, until, results) for _ in range(CLIENTS)),
        )
    return results, seen


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def waits(results: list[Result], waited: bool) -> str:
    found = sorted(r.before_handler for r in results if r.status == 200 and (r.start != "hot") == waited)
    if not found:
        return "none"
    return (
        f"median {statistics.median(found) * 1000:.0f} ms, p99 {percentile(found, 0.99) * 1000:.0f} ms (n={len(found)})"
    )


def main() -> None:
    with workdir() as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        app = root / "app"
        shutil.copytree(EXAMPLE, app)
        with (app / "main.py").open("a") as main_py:
            main_py.write(STAMPED)
        served = serve(home, "--client-rate", "0")  # one load generator, one address: no per-client limit
        try:
            served.cli("push", str(app), "--name", "stepped", "--mode", "function")
            served.cli("scale", "stepped", "--concurrency", str(TARGET), "--max", str(WANTED * 2), "--min", "0")
            results, seen = asyncio.run(step(served.edge_port, home))
            events = json.loads(served.cli("events", "stepped", "--json", "-n", "1000"))
        finally:
            stop(served.proc)
    report(results, seen, events)


def report(results: list[Result], seen: list[tuple[float, int]], events: list[dict[str, Any]]) -> None:
    reached = next((at for at, count in seen if count >= WANTED), None)
    peak = max(count for _, count in seen)
    waited = sum(1 for r in results if r.start != "hot")
    errors = sum(1 for r in results if r.status != 200)
    scale_ups = [e for e in events if e["kind"] == "scale" and e["data"]["to"] > e["data"]["from"]]
    print(f"step 0 -> {CLIENTS} clients on {PATH}, target {TARGET} per instance, {LOAD_SECONDS:g}s of load")
    print(f"  instances before the step: 0; first ready count seen: {seen[0][1] if seen else '?'}")
    if reached is None:
        print(f"  instances never reached {WANTED}: peak {peak}")
    else:
        print(f"  time to {WANTED} ready instances: {reached:.2f} s (peak {peak})")
    print(f"  requests: {len(results)}, non-200: {errors}")
    share = 100 * waited / max(1, len(results))
    print(f"  waited in the activator queue (X-Roost-Start not hot): {waited} ({share:.1f} %)")
    print(f"  their wait, send -> handler start (includes forwarding; not an edge counter): {waits(results, True)}")
    print(f"  the same for requests that did not wait (forwarding floor): {waits(results, False)}")
    print(f"  autoscaler scale-ups recorded: {len(scale_ups)}")
    if reached is None or errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
