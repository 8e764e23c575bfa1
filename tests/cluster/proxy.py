"""The package index's proxy of a test LAN: an HTTP CONNECT proxy on the LAN's uplink address
(netns.py), in a thread of the test process, which reaches the internet. The namespaced machines
have no route out; their daemons get HTTPS_PROXY, so uv reaches PyPI as behind a company's proxy
(Roost's build sandbox lets builds reach the proxy: buildnet.index_endpoints). Only the package
index's hosts on port 443 are tunnelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

ALLOWED = ("pypi.org:443", "files.pythonhosted.org:443")
LIMIT_HEAD = 8192


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _tunnel(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
    try:
        head = await client_reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if method != "CONNECT" or target not in ALLOWED or len(head) > LIMIT_HEAD:
            client_writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        host, _, port = target.rpartition(":")
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        client_writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        client_writer.close()
        return
    client_writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))


@contextlib.contextmanager
def index_proxy(address: str) -> Iterator[str]:
    """Serve the proxy on `address` (a free port) until the block ends; yields its URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, asyncio.AbstractServer] = {}

    async def start() -> None:
        holder["server"] = await asyncio.start_server(_tunnel, address, 0)
        ready.set()

    thread = threading.Thread(target=loop.run_forever, name="index proxy", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    ready.wait(10)
    port = holder["server"].sockets[0].getsockname()[1]
    try:
        yield f"http://{address}:{port}"
    finally:

        async def stop() -> None:
            holder["server"].close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
