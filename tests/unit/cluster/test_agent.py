"""The agent socket: frames over a real Unix socket between `NodeAgent` (blocking, in a thread here
as in a Ray actor) and `AgentServer` (on the loop), the allowlist, errors both ways."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from roost.cluster.agent import AgentServer, NodeAgent
from roost.cluster.agent_wire import HEADER, LIMIT_FRAME, METHODS, encode, round_trip
from roost.cluster.cluster_settings import AGENT_SOCKET_ENV
from roost.cluster.contract import (
    Artifact,
    Assignment,
    ClusterMap,
    Demand,
    NodeHost,
    NodeIdentity,
    NodeReport,
)
from roost.edge.routes import AppRoute, RouteTable
from roost.errors import BuildFailed, NotFound, RoostError, Unavailable, UsageError
from roost.model import AppConfig, AppName, DeploymentId, InstanceId
from roost.runtime.protocol import Isolation

IDENTITY = NodeIdentity("n1", "eu-west", "10.0.0.2:8081", 2**30)
DEP = DeploymentId("d1234567")


class RecordingHost:
    """A NodeHost that records its calls and answers from them; `fail` makes a method raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail: dict[str, BaseException] = {}
        self.release = asyncio.Event()
        self.secret_called = False

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.fail:
            raise self.fail[name]

    async def hello(self) -> NodeIdentity:
        self._record("hello")
        return IDENTITY

    async def prepare(self, artifact: Artifact, archive: bytes) -> float:
        self._record("prepare", artifact, archive)
        return float(len(archive))

    async def assign(self, assignment: Assignment) -> None:
        self._record("assign", assignment)

    async def stop_instance(self, instance: InstanceId, reason: str) -> None:
        self._record("stop_instance", instance, reason)
        await self.release.wait()

    async def retire(self, deployment: DeploymentId) -> None:
        self._record("retire", deployment)

    async def report(self) -> NodeReport:
        self._record("report")
        return NodeReport(IDENTITY, (), {DEP: Demand(3, 12.5)}, (), frozenset({DEP}))

    async def show(self, view: ClusterMap) -> None:
        self._record("show", view)

    async def isolation(self, deployment: DeploymentId | None) -> dict[InstanceId, Isolation]:
        self._record("isolation", deployment)
        return {}

    async def close(self) -> None:  # not a NodeHost method: must be unreachable through the socket
        self.secret_called = True


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[RecordingHost, AgentServer]]:
    host = RecordingHost()
    server = AgentServer(host, tmp_path / "cluster" / "agent.sock")
    await server.start()
    try:
        yield host, server
    finally:
        host.release.set()
        await server.close()


async def call(server: AgentServer, method: str, *args: Any) -> Any:
    agent = NodeAgent(str(server.path))
    return await asyncio.to_thread(getattr(agent, method), *args)


async def test_each_call_is_one_round_trip_to_the_host(served: tuple[RecordingHost, AgentServer]) -> None:
    host, server = served
    artifact = Artifact(AppName("hello"), DEP, "sha256:" + "0" * 64, AppConfig(name="hello"), {"A": "1"})
    assert await call(server, "hello") == IDENTITY
    assert await call(server, "prepare", artifact, b"x" * 70_000) == 70_000.0
    assert await call(server, "assign", Assignment(DEP, 2)) is None
    report = await call(server, "report")
    assert report.demand == {DEP: Demand(3, 12.5)} and report.prepared == frozenset({DEP})
    assert [name for name, _ in host.calls] == ["hello", "prepare", "assign", "report"]
    assert host.calls[1][1] == (artifact, b"x" * 70_000)
    assert host.calls[2][1] == (Assignment(DEP, 2),)


async def test_a_cluster_map_with_routes_crosses_whole(served: tuple[RecordingHost, AgentServer]) -> None:
    host, server = served
    route = AppRoute(AppName("hello"), ((DEP, 100),), frozenset({DEP}), False, 5.0, 1024, True)
    view = ClusterMap(7, RouteTable("localhost", {AppName("hello"): route}), {}, "10.0.0.1:8080")
    await call(server, "show", view)
    assert host.calls == [("show", (view,))]


async def test_the_hosts_roost_error_is_raised_again_with_its_class_message_and_hint(
    served: tuple[RecordingHost, AgentServer],
) -> None:
    host, server = served
    host.fail["assign"] = NotFound("deployment d1234567 is not prepared on node n1", hint="prepare it first")
    host.fail["prepare"] = BuildFailed("uv: no solution", hint="check your requirements")
    with pytest.raises(NotFound) as missing:
        await call(server, "assign", Assignment(DEP, 1))
    assert (missing.value.message, missing.value.hint) == (
        "deployment d1234567 is not prepared on node n1",
        "prepare it first",
    )
    with pytest.raises(BuildFailed, match="uv: no solution"):
        await call(server, "prepare", Artifact(AppName("a"), DEP, "sha256:" + "1" * 64, AppConfig()), b"")


async def test_any_other_error_becomes_a_roost_error_naming_the_method(
    served: tuple[RecordingHost, AgentServer],
) -> None:
    host, server = served
    host.fail["retire"] = KeyError("d1234567")
    with pytest.raises(RoostError, match=r"retire failed on the node: KeyError") as failed:
        await call(server, "retire", DEP)
    assert type(failed.value) is RoostError
    assert await call(server, "hello") == IDENTITY  # the daemon carries on


@pytest.mark.parametrize("method", ["close", "__init__", "_record", "calls", "secret_called"])
async def test_only_node_host_methods_may_be_called(served: tuple[RecordingHost, AgentServer], method: str) -> None:
    host, server = served
    with pytest.raises(UsageError, match=f"no method {method!r}"):
        await asyncio.to_thread(round_trip, str(server.path), (method, ()), 10.0)
    assert not host.secret_called and host.calls == []


def test_the_allowlist_is_the_node_host_protocol() -> None:
    protocol = {name for name in vars(NodeHost) if not name.startswith("_")}
    assert protocol == METHODS


async def test_a_request_that_is_not_method_and_args_is_refused(served: tuple[RecordingHost, AgentServer]) -> None:
    _, server = served
    for request in (["hello", []], ("hello",), "hello", ("hello", ["not", "a", "tuple"])):
        with pytest.raises(UsageError, match=r"is \(method, args\)"):
            await asyncio.to_thread(round_trip, str(server.path), request, 10.0)  # type: ignore[arg-type]


async def test_a_frame_over_the_limit_or_not_a_pickle_drops_only_that_connection(
    served: tuple[RecordingHost, AgentServer],
) -> None:
    _, server = served
    for frame in (HEADER.pack(LIMIT_FRAME + 1), HEADER.pack(5) + b"\x80\x05junk"):
        reader, writer = await asyncio.open_unix_connection(str(server.path))
        writer.write(frame)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed without an answer
        writer.close()
    assert await call(server, "hello") == IDENTITY


async def test_several_requests_share_one_connection(served: tuple[RecordingHost, AgentServer]) -> None:
    _, server = served
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    for _ in range(3):
        writer.write(encode(("hello", ())))
        await writer.drain()
        length = HEADER.unpack(await reader.readexactly(HEADER.size))[0]
        assert b"eu-west" in await reader.readexactly(length)
    writer.close()


async def test_a_call_that_does_not_answer_in_time_fails_and_others_go_on(
    served: tuple[RecordingHost, AgentServer],
) -> None:
    _, server = served
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(round_trip, str(server.path), ("stop_instance", (InstanceId("i1"), "test")), 0.5)
    assert await call(server, "hello") == IDENTITY  # the stuck call does not hold the others


async def test_the_socket_is_owner_only_and_removed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "cluster" / "agent.sock"
    server = AgentServer(RecordingHost(), path)
    await server.start()
    assert stat.S_ISSOCK(path.lstat().st_mode)
    assert stat.S_IMODE(path.lstat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    await server.close()
    assert not path.exists()


async def test_a_daemon_that_is_not_there_is_unavailable(tmp_path: Path) -> None:
    agent = NodeAgent(str(tmp_path / "agent.sock"))
    with pytest.raises(Unavailable, match="does not answer hello"):
        await asyncio.to_thread(agent.hello)


def test_the_agent_finds_the_socket_in_its_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(AGENT_SOCKET_ENV, raising=False)
    with pytest.raises(Unavailable, match=AGENT_SOCKET_ENV):
        NodeAgent()
    monkeypatch.setenv(AGENT_SOCKET_ENV, str(tmp_path / "agent.sock"))
    assert NodeAgent().socket_path == str(tmp_path / "agent.sock")


async def test_closing_ends_the_calls_under_way_and_their_callers_hear_it(tmp_path: Path) -> None:
    host = RecordingHost()
    server = AgentServer(host, tmp_path / "agent.sock")
    await server.start()
    agent = NodeAgent(str(server.path))
    stuck = asyncio.ensure_future(asyncio.to_thread(agent.stop_instance, InstanceId("i1"), "test"))
    for _ in range(200):
        if host.calls:
            break
        await asyncio.sleep(0.01)
    assert host.calls == [("stop_instance", (InstanceId("i1"), "test"))]
    await server.close()  # the host never answers: the call is cut, not waited for
    with pytest.raises(Unavailable, match="does not answer stop_instance"):
        await stuck
    assert not server.path.exists()
