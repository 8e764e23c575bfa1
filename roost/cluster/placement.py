"""The head's hands on Ray, through the Ray driver process (`raybridge.py`): the node list, one
single-bundle placement group per instance, and calls to the agent actor pinned on each node.

The driver runs in a child process because a Ray driver terminates its process when Ray's head
stays away for long; the daemon outlives that and starts a new driver (`connect` again) once
Ray's head is back. Never imports Ray. Nothing here decides how many instances run or where:
`ClusterRuntime` (cluster_runtime.py) decides how many, Ray where.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from roost.cluster.agent_wire import encode, read_frame, unwrap
from roost.cluster.cluster_settings import MEMORY_RESOURCE, REGION_RESOURCE_PREFIX
from roost.errors import Unavailable

log = logging.getLogger("roost.cluster")
REGION_SHARE = 0.001  # of a node's `roost_region_<r>: 1`: a mark that the bundle wants region r, not a limit
TIMEOUT_CONNECT = 90.0  # Ray's driver takes 1-3 s when idle, far more on a busy machine
TIMEOUT_OP = 30.0
GRACE_STOP = 10.0


@dataclass(frozen=True, slots=True)
class RayNodeState:
    """A node as Ray sees it now: id (hex), alive, the instance memory it offers (bytes), address."""

    node_id: str
    alive: bool
    memory: float
    address: str


@dataclass(frozen=True, slots=True)
class Reservation:
    """One instance's place: a placement group (`id`) with one bundle of the app's memory limit."""

    id: str
    memory: int
    region: str


class RayCluster:
    """The driver process for the cluster's Ray head at `address`; `env` is its environment (the
    token's path, never the token)."""

    def __init__(self, address: str, env: Mapping[str, str]) -> None:
        self.address = address
        self.env = dict(env)
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self.ended = ""  # why the last driver ended, in words

    @property
    def connected(self) -> bool:
        return self._reading is not None and not self._reading.done()

    async def connect(self) -> None:
        """Start the driver and wait until it has joined Ray. Raises Unavailable."""
        await self.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "roost.cluster.raybridge",
                str(theirs.fileno()),
                self.address,
                pass_fds=(theirs.fileno(),),
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            theirs.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        try:
            hello = await asyncio.wait_for(read_frame(reader), TIMEOUT_CONNECT)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise Unavailable(
                f"the head's Ray driver did not connect to {self.address}",
                hint="Ray's head may be starting again; Roost retries",
            ) from exc
        if hello != ("ready",):
            await self.close()
            raise Unavailable(f"the head's Ray driver said {hello!r:.100} instead of ready")
        self._reading = asyncio.get_running_loop().create_task(self._read(reader), name="ray driver")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                call, reply = await read_frame(reader)
                waiter = self._waiting.pop(call, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            code = await self._proc.wait() if self._proc is not None else None
            self.ended = f"the head's Ray driver ended (status {code})"
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(
                        Unavailable(self.ended, hint="Ray's head restarted or failed; Roost reconnects")
                    )
            self._waiting.clear()

    async def _op(self, name: str, *args: Any, timeout: float = TIMEOUT_OP) -> Any:  # noqa: ASYNC109 - per operation
        if not self.connected or self._writer is None:
            raise Unavailable(self.ended or "the head is not connected to Ray yet")
        call = next(self._ids)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[call] = waiter
        self._writer.write(encode((call, name, args)))
        try:
            reply = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise Unavailable(f"Ray did not answer {name} within {timeout:g} s") from None
        finally:
            self._waiting.pop(call, None)
        return unwrap(reply)

    async def nodes(self) -> list[RayNodeState]:
        return [RayNodeState(*row) for row in await self._op("nodes")]

    async def reserve(self, memory: int, region: str = "") -> Reservation:
        """Ask Ray for a place for one instance (returns at once; `placed` waits for it)."""
        bundle: dict[str, float] = {MEMORY_RESOURCE: float(memory)}
        if region:
            bundle[REGION_RESOURCE_PREFIX + region] = REGION_SHARE
        return Reservation(await self._op("reserve", bundle), memory, region)

    async def placed(self, reservation: Reservation, within: float) -> bool:
        """Whether Ray found the place within `within` seconds."""
        return bool(await self._op("placed", reservation.id, within, timeout=within + TIMEOUT_OP))

    async def where(self, reservations: list[Reservation]) -> dict[str, str | None]:
        """Each reservation's node now (None while Ray finds it a new one)."""
        found: dict[str, str | None] = await self._op("where", [r.id for r in reservations])
        return found

    async def release(self, reservation: Reservation) -> None:
        with contextlib.suppress(Unavailable):  # a driver that ended took its placement groups along
            await self._op("release", reservation.id)

    async def call(self, node_id: str, method: str, *args: Any, timeout: float) -> Any:  # noqa: ASYNC109
        """One `NodeHost` method on the node's agent actor; raises the node's RoostError, or
        Unavailable when the node or its actor did not answer within `timeout`."""
        return await self._op("call", node_id, method, args, timeout, timeout=timeout + TIMEOUT_OP)

    async def close(self) -> None:
        """Close the socket (the driver leaves Ray and exits); KILL it after a grace."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), GRACE_STOP)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._reading is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
            self._reading = None
