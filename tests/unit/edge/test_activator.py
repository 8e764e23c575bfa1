"""The activator: waiting FIFO for a slot while the runtime starts instances, and failing fast."""

from __future__ import annotations

import asyncio
import time

from roost.edge import EdgeSettings
from roost.edge.activator import LIMIT_INSTEAD, Activator
from roost.model import DeploymentId, InstanceId
from roost.runtime.protocol import Slot, StartKind
from tests.unit.edge.harness import LoopbackRuntime, Plan, Response, Running, route, running_edge, table, until


async def get(edge: Running, path: str = "/", local: str = "127.0.0.1") -> Response:
    async with edge.client(local) as client:
        return await client.request("GET", path, "hello.localhost")


async def test_one_start_for_many_waiters(hello: tuple[str, int]) -> None:
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello], concurrency=50, start_delay=0.2), ready=0)
    async with running_edge(runtime, table(route("hello", [(dep, 100)]))) as edge:
        responses = await asyncio.gather(*(get(edge) for _ in range(30)))
        assert [r.status for r in responses] == [200] * 30
        assert {r.headers["x-roost-start"] for r in responses} == {"warm"}  # forked: a warm start
        assert runtime.starts[dep] == 1
        assert (await get(edge)).headers["x-roost-start"] == "hot"
    assert runtime.acquired == runtime.released == 31


async def test_a_fresh_process_is_a_cold_start(hello: tuple[str, int]) -> None:
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello], start_kind=StartKind.FRESH, start_delay=0.05), ready=0)
    async with running_edge(runtime, table(route("hello", [(dep, 100)]))) as edge:
        assert (await get(edge)).headers["x-roost-start"] == "cold"


async def test_waiting_only_for_a_free_slot_on_a_ready_instance_is_hot(hello: tuple[str, int]) -> None:
    """The instance was started fresh long ago: the queued request waited for a slot, not an import."""
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello], concurrency=1, maximum=1, start_kind=StartKind.FRESH))
    assert runtime.ready(dep)[0].start_kind is StartKind.FRESH
    async with running_edge(runtime, table(route("hello", [(dep, 100)]))) as edge:
        first = asyncio.create_task(get(edge, "/sleep?s=0.5"))
        await until(lambda: runtime.instances_of(dep)[0].in_flight == 1)
        second = asyncio.create_task(get(edge))
        await until(lambda: edge.edge.counters(dep).queued == 1)  # it waits: the only slot is taken
        responses = await asyncio.gather(first, second)
        assert [r.status for r in responses] == [200, 200]
        assert [r.headers["x-roost-start"] for r in responses] == ["hot", "hot"]
        assert dict(edge.edge.counters(dep).starts) == {"cold": 0, "warm": 0, "hot": 2}
        assert runtime.starts[dep] == 0  # nothing was started for it


async def test_a_waiter_that_a_start_served_is_warm_even_if_a_ready_instance_existed(hello: tuple[str, int]) -> None:
    """One busy ready instance, room for a second: the queued request gets the new one (forked)."""
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello], concurrency=1, maximum=2, start_delay=0.05))
    async with running_edge(runtime, table(route("hello", [(dep, 100)]))) as edge:
        first = asyncio.create_task(get(edge, "/sleep?s=1"))
        await until(lambda: runtime.instances_of(dep)[0].in_flight == 1)
        second = await get(edge)
        assert (second.status, second.headers["x-roost-start"]) == (200, "warm")
        assert runtime.starts[dep] == 1
        assert (await first).headers["x-roost-start"] == "hot"


async def test_concurrency_is_respected_and_waiters_are_served_in_order(hello: tuple[str, int]) -> None:
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello], concurrency=1, maximum=1))
    async with running_edge(runtime, table(route("hello", [(dep, 100)]))) as edge:
        finished: list[str] = []

        async def one(name: str) -> None:
            response = await get(edge, f"/sleep?s=0.1&n={name}")
            assert response.status == 200
            finished.append(name)

        first = asyncio.create_task(one("a"))
        await until(lambda: edge.runtime.instances_of(dep)[0].in_flight == 1)  # it holds the only slot
        rest = []
        for name in "bcd":
            rest.append(asyncio.create_task(one(name)))
            await until(lambda: edge.edge.counters(dep).queued == len(rest))  # queued: the order is set
        await asyncio.gather(first, *rest)
        assert finished == ["a", "b", "c", "d"]
        assert max(i.in_flight for i in runtime.instances_of(dep)) == 0
    assert runtime.acquired == runtime.released == 4


async def test_a_full_queue_sheds_load_at_once(hello: tuple[str, int]) -> None:
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello], start_delay=30), ready=0)
    async with running_edge(runtime, table(route("hello", [(dep, 100)])), EdgeSettings(limit_queue=2)) as edge:
        waiting = [asyncio.create_task(get(edge)) for _ in range(2)]
        await until(lambda: edge.edge.counters(dep).queued == 2)
        started = time.monotonic()
        shed = await get(edge)
        assert shed.status == 503
        assert shed.headers["retry-after"] == "1"
        assert time.monotonic() - started < 1
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)


async def test_a_long_wait_answers_503_with_retry_after(hello: tuple[str, int]) -> None:
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello], start_delay=30), ready=0)
    settings = EdgeSettings(timeout_activate=0.3)
    async with running_edge(runtime, table(route("hello", [(dep, 100)])), settings) as edge:
        response = await get(edge)
        assert response.status == 503
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["x-request-id"] in response.text
        assert edge.edge.counters(dep).requests_5xx == 1


async def test_a_failed_start_fails_waiters_fast(hello: tuple[str, int]) -> None:
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello], start_delay=0.05, fail_start="exited with status 3 in /srv/x"), ready=0)
    async with running_edge(runtime, table(route("hello", [(dep, 100)]))) as edge:
        started = time.monotonic()
        responses = await asyncio.gather(*(get(edge) for _ in range(5)))
        assert time.monotonic() - started < 5
        assert {r.status for r in responses} == {502}
        assert all("/srv/x" not in r.text for r in responses)  # never the internals
        assert runtime.starts[dep] == 1


async def test_a_waiting_client_that_leaves_is_forgotten(hello: tuple[str, int]) -> None:
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello], start_delay=0.3), ready=0)
    async with running_edge(runtime, table(route("hello", [(dep, 100)]))) as edge:
        client = edge.client()
        await client.connect()
        await client.send(b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n")
        await until(lambda: edge.edge.counters(dep).queued == 1)
        await client.close()
        await until(lambda: edge.edge.counters(dep).queued == 0)  # the edge noticed: the waiter left
        assert (await get(edge)).status == 200
    assert runtime.acquired == runtime.released


def test_a_retry_search_ends_on_a_slot_source_without_a_count() -> None:
    """Another edge (the head's, in a cluster) takes any number of requests: looking for a slot
    off it must end, with that edge again and every extra slot given back."""
    handed: list[Slot] = []

    class Unbounded:
        def try_acquire(self, deployment: DeploymentId) -> Slot:
            slot = Slot(InstanceId("edge:head"), deployment, "127.0.0.1", 9, StartKind.FORK, lambda s: None)
            handed.append(slot)
            return slot

    dep = DeploymentId("dep00001")
    activator = Activator(Unbounded(), 10, 1.0)  # type: ignore[arg-type]
    failed = Slot(InstanceId("edge:head"), dep, "127.0.0.1", 9, StartKind.FORK, lambda s: None)
    again = activator.instead_of(dep, failed)
    assert again.instance == failed.instance and not again.released
    assert len(handed) == LIMIT_INSTEAD
    assert all(slot.released for slot in [failed, *handed] if slot is not again)
