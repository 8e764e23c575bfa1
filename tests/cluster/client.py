"""A bounded load of real HTTP requests from inside one namespaced machine (the cluster tests'
client host): `rate` requests a second for `seconds`, spread round-robin over the edges given,
each with the app's Host header. Writes one JSON line per request to `out`:
{"at": seconds since start, "edge": index, "status": 200 or 0, "error": "", "node": X-Roost-Node,
"ms": latency}. Run as a program (`ip netns exec <client> python -m tests.cluster.client ...`).
Stops early when `stop_file` appears.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx

TIMEOUT = 10.0


async def one(client: httpx.AsyncClient, url: str, host: str, began: float, edge: int) -> dict[str, object]:
    sent = time.monotonic()
    record: dict[str, object] = {"at": round(sent - began, 4), "edge": edge, "status": 0, "error": "", "node": ""}
    try:
        response = await client.get(url, headers={"Host": host})
        record["status"] = response.status_code
        record["node"] = response.headers.get("x-roost-node", "")
        if response.status_code != 200:
            record["error"] = response.text[:200]
    except httpx.HTTPError as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"[:200]
    record["ms"] = round((time.monotonic() - sent) * 1000, 2)
    return record


async def load(urls: list[str], host: str, rate: float, seconds: float, out: Path, stop_file: Path | None) -> None:
    began = time.monotonic()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as client:
        pending: set[asyncio.Task[dict[str, object]]] = set()
        with out.open("w") as sink:

            def write(task: asyncio.Task[dict[str, object]]) -> None:
                pending.discard(task)
                sink.write(json.dumps(task.result()) + "\n")
                sink.flush()

            count = 0
            while time.monotonic() - began < seconds and not (stop_file and stop_file.exists()):
                edge = count % len(urls)
                task = asyncio.create_task(one(client, urls[edge], host, began, edge))
                task.add_done_callback(write)
                pending.add(task)
                count += 1
                await asyncio.sleep(max(0.0, began + count / rate - time.monotonic()))
            if pending:
                await asyncio.wait(pending)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stop-file", type=Path)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    asyncio.run(load(args.urls, args.host, args.rate, args.seconds, args.out, args.stop_file))


if __name__ == "__main__":
    main()
