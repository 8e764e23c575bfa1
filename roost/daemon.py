"""`roost serve`: wiring, start and stop order, signals. Nothing imports this module.

One asyncio loop (uvloop) runs the admin API and the edge. Signal handlers
only set an event; the shutdown order is written once, in `Daemon.shutdown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Generator

import uvicorn
import uvloop

from roost.api import create_api
from roost.control import Control
from roost.edge import PlaceholderProtocol
from roost.homelock import HomeLock
from roost.listeners import bind_tcp, bind_unix
from roost.settings import ServeSettings
from roost.store import Store

log = logging.getLogger("roost.daemon")
GRACE_API_SHUTDOWN = 3


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn on sockets we bound, without its own signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


class Daemon:
    """Owns every long-lived piece of one `roost serve` run."""

    def __init__(self, settings: ServeSettings, announce: Callable[[str], None]) -> None:
        self.settings = settings
        self.announce = announce
        self.stopping = asyncio.Event()
        self._lock = HomeLock(settings.lock_path)
        self._sockets: list[socket.socket] = []
        self._store: Store | None = None
        self._edge: asyncio.Server | None = None
        self._api: _EmbeddedUvicorn | None = None
        self._api_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Lock the home, bind every socket, open the store, start serving."""
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        s = self.settings
        edge_sock = self._keep(bind_tcp(s.edge_host, s.edge_port, "edge router", "--port"))
        api_sock = self._keep(bind_tcp(s.api_host, s.api_port, "admin API", "--api-port"))
        unix_sock = self._keep(bind_unix(s.socket_path))
        self._store = await Store.open(s.db_path)
        control = Control(self._store)
        loop = asyncio.get_running_loop()
        self._edge = await loop.create_server(PlaceholderProtocol, sock=edge_sock)
        config = uvicorn.Config(
            create_api(control),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACE_API_SHUTDOWN,
        )
        self._api = _EmbeddedUvicorn(config)
        self._api_task = asyncio.create_task(self._api.serve(sockets=[api_sock, unix_sock]))
        while not self._api.started:
            if self._api_task.done():
                await self._api_task
                raise RuntimeError("the admin API stopped while starting")
            await asyncio.sleep(0.01)
        self.announce(f"admin API  {_address(api_sock)}  (and unix socket {s.socket_path})")
        self.announce(
            f"edge       {_address(edge_sock)}  (apps at http://<app>.{s.domain}:{edge_sock.getsockname()[1]}/)"
        )
        self.announce(f"home       {s.home}")
        self.announce("roost is ready")

    def _keep(self, sock: socket.socket) -> socket.socket:
        self._sockets.append(sock)
        return sock

    async def shutdown(self) -> None:
        """The one shutdown order: close listeners, stop the API, flush the store, unlock."""
        if self._edge is not None:
            self._edge.close()
        if self._api is not None and self._api_task is not None:
            self._api.should_exit = True
            await self._api_task
        if self._edge is not None:
            await self._edge.wait_closed()
        if self._store is not None:
            await self._store.close()
        for sock in self._sockets:
            sock.close()
        with contextlib.suppress(FileNotFoundError):
            if self._sockets:
                self.settings.socket_path.unlink()
        self._lock.release()


async def _serve(settings: ServeSettings, announce: Callable[[str], None]) -> None:
    daemon = Daemon(settings, announce)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, daemon.stopping.set)
    try:
        await daemon.start()
        await daemon.stopping.wait()
        announce("stopping")
    finally:
        await daemon.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    announce("stopped")


def run(settings: ServeSettings, announce: Callable[[str], None]) -> None:
    """Run the daemon until SIGINT or SIGTERM. Raises RoostError on a failed start."""
    uvloop.run(_serve(settings, announce))
