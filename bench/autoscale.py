"""Autoscaler step response: 0 -> 200 concurrent clients on an endpoint that takes 50 ms, with a
target concurrency of 10 per instance (so 20 instances are wanted), against a real `roost serve`.

Prints the time until the instance count reaches 20, the share of requests that waited in the
activator queue (their X-Roost-Start is not "hot": no free slot when they came), and the p99 of
that wait (a waiting request's latency minus the endpoint's 50 ms, measured against the same
endpoint's hot latency at low load in the same run).

Run: .venv/bin/python bench/autoscale.py [SECONDS_OF_LOAD]
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx
from _common import EXAMPLE, serve, stop, workdir

CLIENTS = 200
TARGET = 10
WANTED = CLIENTS // TARGET
LOAD_SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
PATH = "/slow?ms=50"
HOST = "stepped.localhost"


class Connection:
    """One keep-alive HTTP/1.1 connection to the edge: a request, then its whole answer.
    (httpx's pool costs more CPU than the edge itself at this load on two cores.)"""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def get(self, path: str, host: str) -> tuple[int, str]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers.get("x-roost-start", "")

    def close(self) -> None:
        self.writer.close()


async def client(port: int, until: float, results: list[tuple[float, str, int]]) -> None:
    connection = await Connection.open(port)
    try:
        while time.monotonic() < until:
            started = time.perf_counter()
            status, start = await connection.get(PATH, HOST)
            results.append((time.perf_counter() - started, start, status))
    finally:
        connection.close()


async def count_instances(api: httpx.AsyncClient, app: str, until: float, seen: list[tuple[float, int]]) -> None:
    t0 = time.monotonic()
    while time.monotonic() < until:
        details = (await api.get(f"/v1/apps/{app}", params={"events": 0})).json()
        ready = sum(1 for i in details["instances"] if i["state"] == "ready")
        seen.append((time.monotonic() - t0, ready))
        await asyncio.sleep(0.1)


async def step(edge_port: int, home: Path) -> tuple[list[tuple[float, str, int]], list[tuple[float, int]], float]:
    warm = await Connection.open(edge_port)
    await warm.get(PATH, HOST)  # one instance up, as after the first request
    baseline = []
    for _ in range(30):
        started = time.perf_counter()
        await warm.get(PATH, HOST)
        baseline.append(time.perf_counter() - started)
    warm.close()
    hot = statistics.median(baseline)
    transport = httpx.AsyncHTTPTransport(uds=str(home / "roost.sock"))
    async with httpx.AsyncClient(transport=transport, base_url="http://roost", timeout=30) as api:
        results: list[tuple[float, str, int]] = []
        seen: list[tuple[float, int]] = []
        until = time.monotonic() + LOAD_SECONDS
        await asyncio.gather(
            count_instances(api, "stepped", until, seen), *(client(edge_port, until, results) for _ in range(CLIENTS))
        )
    return results, seen, hot


def main() -> None:
    with workdir() as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        app = root / "app"
        shutil.copytree(EXAMPLE, app)
        served = serve(home, "--client-rate", "0")  # one load generator, one address: no per-client limit
        try:
            served.cli("push", str(app), "--name", "stepped")
            served.cli("scale", "stepped", "--concurrency", str(TARGET), "--max", str(WANTED * 2), "--min", "0")
            results, seen, hot = asyncio.run(step(served.edge_port, home))
            events = json.loads(served.cli("events", "stepped", "--json", "-n", "1000"))
        finally:
            stop(served.proc)
    reached = next((at for at, count in seen if count >= WANTED), None)
    peak = max(count for _, count in seen)
    waited = [latency for latency, start, _ in results if start != "hot"]
    waits = sorted(max(0.0, latency - hot) for latency in waited)
    errors = sum(1 for _, _, status in results if status != 200)
    scale_ups = [e for e in events if e["kind"] == "scale" and e["data"]["to"] > e["data"]["from"]]
    print(f"step 0 -> {CLIENTS} clients on {PATH}, target {TARGET} per instance, {LOAD_SECONDS:g}s of load")
    print(f"  hot latency at low load (reference): {hot * 1000:.1f} ms median")
    if reached is None:
        print(f"  instances never reached {WANTED}: peak {peak}")
    else:
        print(f"  time to {WANTED} ready instances: {reached:.2f} s (peak {peak})")
    print(f"  requests: {len(results)}, non-200: {errors}")
    print(f"  waited in the activator queue: {len(waited)} ({100 * len(waited) / max(1, len(results)):.1f} %)")
    if waits:
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
        print(f"  their wait: median {statistics.median(waits) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    print(f"  autoscaler scale-ups recorded: {len(scale_ups)}")
    if reached is None or errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
