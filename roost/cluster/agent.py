"""The relay between the cluster's head and a machine's daemon: `NodeAgent`, which runs in a Ray
actor pinned to the machine and turns each call into one round trip over the daemon's owner-only
Unix socket, and `AgentServer`, which serves that socket in the daemon and calls its `NodeHost`.

No Ray here: the head wraps `NodeAgent` (`ray.remote(num_cpus=0, max_concurrency=16)(NodeAgent)`)
and pins it with NodeAffinitySchedulingStrategy. Only `NodeHost`'s methods can be called.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Any

from roost.cluster.agent_wire import METHODS, FrameError, Reply, encode, error, ok, read_frame, round_trip
from roost.cluster.cluster_settings import AGENT_SOCKET_ENV
from roost.cluster.contract import Artifact, Assignment, ClusterMap, NodeHost, NodeIdentity, NodeReport
from roost.errors import RoostError, Unavailable, UsageError
from roost.listeners import bind_unix
from roost.model import DeploymentId, InstanceId
from roost.runtime.protocol import Isolation

log = logging.getLogger("roost.cluster.agent")
TIMEOUT_CALL = 30.0  # seconds for a call that only reads or changes state
TIMEOUT_PREPARE = 30 * 60.0  # prepare builds: uv installs, up to the builder's own --build-timeout
TIMEOUT_ASSIGN = 120.0  # assign may wait for instances to stop when a count is lowered
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    pid_uid_gid = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    return int(_PEERCRED.unpack(pid_uid_gid)[1])


class AgentServer:
    """Serves `host` on the Unix socket `path` (0600; its folder is made 0700).

    Example (a node's daemon, and the head's)::

        server = AgentServer(host, agent_socket_path(home))
        await server.start()
        ...
        await server.close()      # no new calls; the socket file is removed
    """

    def __init__(self, host: NodeHost, path: Path) -> None:
        self.host = host
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen; ConfigError when the socket cannot be made."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        sock = bind_unix(self.path)
        self._server = await asyncio.start_unix_server(self._connection, sock=sock)

    async def close(self) -> None:
        """Stop listening, end the calls under way, remove the socket."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()  # from Python 3.12 it waits for the connections: ended above
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - a callback of start_unix_server runs as a task
        self._connections.add(task)
        try:
            if _peer_uid(writer) != os.geteuid():  # the socket's mode says so already; said twice for pickle's sake
                log.warning("agent socket: refused a peer of another user")
                return
            await self._serve(reader, writer)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Requests one after another until the caller closes."""
        while True:
            try:
                request = await read_frame(reader)
            except asyncio.IncompleteReadError:
                return
            except FrameError as exc:
                log.warning("agent socket: %s; connection dropped", exc)
                return
            writer.write(self._frame(await self.call(request)))
            await writer.drain()

    @staticmethod
    def _frame(reply: Reply) -> bytes:
        try:
            return encode(reply)
        except Exception as exc:  # noqa: BLE001 - a value that does not pickle is the host's bug, said to the caller
            return encode(error(RoostError(f"the node's answer could not be sent: {exc}")))

    async def call(self, request: object) -> Reply:
        """One request's reply: the method's value, or the RoostError it raised (any other error as
        a RoostError saying what failed)."""
        if not (isinstance(request, tuple) and len(request) == 2 and isinstance(request[1], tuple)):
            return error(UsageError("a request to the node agent is (method, args)"))
        method, args = request
        if method not in METHODS:
            allowed = ", ".join(sorted(METHODS))
            return error(UsageError(f"the node agent has no method {method!r}", hint=f"it has {allowed}"))
        try:
            return ok(await getattr(self.host, method)(*args))
        except RoostError as exc:
            return error(exc)
        except Exception as exc:
            log.exception("node agent: %s failed", method)
            return error(RoostError(f"{method} failed on the node: {type(exc).__name__}: {exc}"))


def agent_socket() -> str:
    """The daemon's socket as Ray's processes on this machine were told (`ray_environment`)."""
    path = os.environ.get(AGENT_SOCKET_ENV)
    if not path:
        raise Unavailable(
            f"{AGENT_SOCKET_ENV} is not set in this Ray worker",
            hint="the node's Ray must be started by `roost node join` (or the head's by `roost serve --cluster`)",
        )
    return path


class NodeAgent:
    """The head's handle on one machine's daemon, living in a Ray actor on that machine; each
    method is one round trip to the daemon's `NodeHost` (see it for what they do), and raises
    what the host raised, or Unavailable when the daemon does not answer in time."""

    def __init__(self, socket_path: str | None = None) -> None:
        self.socket_path = socket_path or agent_socket()

    def _call(self, method: str, *args: object, timeout: float = TIMEOUT_CALL) -> Any:
        try:
            return round_trip(self.socket_path, (method, args), timeout)
        except TimeoutError as exc:
            raise Unavailable(
                f"the node daemon did not answer {method} within {timeout:g}s", hint="see the node's own output"
            ) from exc
        except (OSError, FrameError) as exc:
            raise Unavailable(
                f"the node daemon's agent socket {self.socket_path} does not answer {method}: {exc}",
                hint="is `roost node join` (or `roost serve --cluster`) running on that machine?",
            ) from exc

    def hello(self) -> NodeIdentity:
        identity: NodeIdentity = self._call("hello")
        return identity

    def prepare(self, artifact: Artifact, archive: bytes) -> float:
        seconds: float = self._call("prepare", artifact, archive, timeout=TIMEOUT_PREPARE)
        return seconds

    def assign(self, assignment: Assignment) -> None:
        self._call("assign", assignment, timeout=TIMEOUT_ASSIGN)

    def stop_instance(self, instance: InstanceId, reason: str) -> None:
        self._call("stop_instance", instance, reason, timeout=TIMEOUT_ASSIGN)

    def retire(self, deployment: DeploymentId) -> None:
        self._call("retire", deployment, timeout=TIMEOUT_ASSIGN)

    def report(self) -> NodeReport:
        report: NodeReport = self._call("report")
        return report

    def show(self, view: ClusterMap) -> None:
        self._call("show", view)

    def isolation(self, deployment: DeploymentId | None) -> dict[InstanceId, Isolation]:
        found: dict[InstanceId, Isolation] = self._call("isolation", deployment)
        return found
