"""Benchmark: which WebSocket implementation Roost's runner hands uvicorn.

    python bench/websocket.py [--rounds 5] [--messages 2000] [--handshakes 200]

Serves an echo ASGI app with uvicorn (httptools, uvloop, as the runner does), one
server process per implementation (`websockets`, `websockets-sansio`, `wsproto`),
and measures each with the same client (the `websockets` library): echo round-trips
per second on one connection (a 32-byte text message, sent and awaited, `--messages`
times) and handshake latency (connect until the 101 is read, then close; median of
`--handshakes`). Rounds are interleaved (each round measures every server once, in
turn), so the host's noise hits all alike; the medians over the rounds are printed,
and each implementation's ratio to wsproto (the reference) as the median of the
rounds' ratios. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

IMPLEMENTATIONS = ("websockets", "websockets-sansio", "wsproto")
REFERENCE = "wsproto"
MESSAGE = "x" * 32
TIMEOUT_READY = 30.0


# -- the server under test (its own process) ------------------------------------------------------


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept a WebSocket and send back every text message."""
    if scope["type"] != "websocket":
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text")})
        else:
            return


def serve(implementation: str, fd: int) -> None:
    import uvicorn

    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(
        echo, http="httptools", loop="uvloop", ws=implementation, lifespan="off", log_level="warning"
    )
    uvicorn.Server(config).run(sockets=[sock])


# -- the client -----------------------------------------------------------------------------------


@dataclass
class Figures:
    round_trips: list[float] = field(default_factory=list)  # per second, one value per round
    handshakes: list[float] = field(default_factory=list)  # seconds, the median of each round


@contextlib.contextmanager
def server(implementation: str) -> Iterator[int]:
    """A server process for `implementation` on a port of its own; its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port: int = sock.getsockname()[1]
    argv = [sys.executable, __file__, "--serve", implementation, "--fd", str(sock.fileno())]
    proc = subprocess.Popen(argv, pass_fds=[sock.fileno()], start_new_session=True)
    sock.close()
    try:
        asyncio.run(wait_ready(port))
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


async def wait_ready(port: int) -> None:
    from websockets.asyncio.client import connect

    deadline = time.monotonic() + TIMEOUT_READY
    while True:
        try:
            async with connect(f"ws://127.0.0.1:{port}/"):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def round_trips(port: int, count: int) -> float:
    from websockets.asyncio.client import connect

    async with connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
        started = time.perf_counter()
        for _ in range(count):
            await ws.send(MESSAGE)
            await ws.recv()
        return count / (time.perf_counter() - started)


async def handshakes(port: int, count: int) -> float:
    from websockets.asyncio.client import connect

    samples = []
    for _ in range(count):
        started = time.perf_counter()
        ws = await connect(f"ws://127.0.0.1:{port}/", compression=None)
        samples.append(time.perf_counter() - started)
        await ws.close()
    return statistics.median(samples)


def measure(ports: dict[str, int], rounds: int, messages: int, count: int) -> dict[str, Figures]:
    figures = {name: Figures() for name in ports}
    for number in range(1, rounds + 1):
        for name, port in ports.items():
            rate = asyncio.run(round_trips(port, messages))
            latency = asyncio.run(handshakes(port, count))
            figures[name].round_trips.append(rate)
            figures[name].handshakes.append(latency)
            print(f"round {number}  {name:<18} {rate:8.0f} round-trips/s   handshake {latency * 1000:6.2f} ms")
    return figures


def report(figures: dict[str, Figures]) -> None:
    reference = figures[REFERENCE]
    print(f"\nmedians over the rounds; ratios are the median of each round's ratio to {REFERENCE}")
    for name, found in figures.items():
        rate_ratio = statistics.median(a / b for a, b in zip(found.round_trips, reference.round_trips, strict=True))
        shake_ratio = statistics.median(a / b for a, b in zip(found.handshakes, reference.handshakes, strict=True))
        spread = max(found.round_trips) - min(found.round_trips)
        print(
            f"{name:<18} {statistics.median(found.round_trips):8.0f} round-trips/s (spread {spread:.0f})"
            f"  x{rate_ratio:.2f}   handshake {statistics.median(found.handshakes) * 1000:6.2f} ms"
            f"  x{shake_ratio:.2f} of {REFERENCE}'s time"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--handshakes", type=int, default=200)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.fd)
        return
    with contextlib.ExitStack() as stack:
        ports = {name: stack.enter_context(server(name)) for name in IMPLEMENTATIONS}
        report(measure(ports, args.rounds, args.messages, args.handshakes))


if __name__ == "__main__":
    main()
