"""Functions sleep when idle, draining lets requests finish, deployments roll, counts
converge, and close() leaves nothing behind."""

import asyncio
import dataclasses
import json
import time

import psutil

from roost.errors import Unavailable
from roost.model import InstanceState, Mode, ScaleConfig
from roost.runtime import StartKind
from tests.unit.runtime.conftest import Harness, get, http


async def test_a_function_instance_stops_after_its_idle_timeout(harness: Harness) -> None:
    spec = harness.function("handler", entrypoint="handler:handler", scale=ScaleConfig(idle_timeout=0.3))
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    assert (await get(slot, "/"))[0] == 200
    await harness.recorder.until(lambda: not harness.live(spec.deployment))
    stopped = [i for i in harness.runtime.instances(spec.deployment) if i.state is InstanceState.STOPPED]
    assert [i.reason for i in stopped] == ["idle for 0.3s"]


async def test_a_request_in_flight_keeps_its_instance_awake(harness: Harness) -> None:
    spec = harness.function("fastapi", entrypoint="main:app", scale=ScaleConfig(idle_timeout=0.2))
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    status, _, _ = await get(slot, "/slow?ms=600")
    assert status == 200
    assert "instance.draining" not in harness.recorder.kinds()


async def test_draining_waits_for_the_request_in_flight_then_stops(harness: Harness) -> None:
    spec = harness.service("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    request = asyncio.ensure_future(get(slot, "/slow?ms=800"))
    await asyncio.sleep(0.2)  # the request is on its way; draining must not cut it
    stopping = asyncio.ensure_future(harness.runtime.stop_instance(slot.instance, "test drain"))
    await harness.recorder.until(lambda: "instance.draining" in harness.recorder.kinds())
    status, _, body = await request
    assert (status, json.loads(body)) == (200, {"slept_ms": 800})
    await stopping
    finished = [i for i in harness.runtime.instances(spec.deployment) if i.id == slot.instance]
    assert (finished[0].state, finished[0].reason) == (InstanceState.STOPPED, "test drain")
    await harness.recorder.until(lambda: len(harness.ready(spec.deployment)) == 1)  # the service's floor


async def test_a_draining_instance_takes_no_new_request(harness: Harness) -> None:
    spec = harness.function("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    request = asyncio.ensure_future(get(slot, "/slow?ms=500"))
    stopping = asyncio.ensure_future(harness.runtime.stop_instance(slot.instance, "test"))
    await harness.recorder.until(lambda: "instance.draining" in harness.recorder.kinds())
    assert harness.runtime.try_acquire(spec.deployment) is None
    assert harness.runtime.stats(spec.deployment).draining == 1
    await request
    await stopping


async def test_close_leaves_no_process(harness: Harness) -> None:
    service = harness.service("fastapi", entrypoint="main:app", scale=ScaleConfig(min=2))
    command = harness.service("command", command="python server.py")
    fresh = harness.function("handler", entrypoint="handler:handler", preload=False)
    for spec in (service, command, fresh):
        await harness.runtime.deploy(spec)
    await harness.acquire(fresh.deployment)
    await harness.recorder.until(lambda: len(harness.ready(service.deployment)) == 2)
    await harness.recorder.until(lambda: len(harness.ready(command.deployment)) == 1)
    pids = set(harness.recorder.pids)
    assert len(pids) >= 5  # two forked, one command, one fresh, a zygote
    await harness.runtime.close()
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not alive
    assert not harness.runtime.instances()
    assert not list((harness.home / "run" / "tmp").iterdir())


async def test_a_new_spec_rolls_the_instances(harness: Harness) -> None:
    spec = harness.service("fastapi", entrypoint="main:app", env={"GENERATION": "1"})
    await harness.runtime.deploy(spec)
    await harness.recorder.until(lambda: len(harness.ready(spec.deployment)) == 1)
    old = harness.ready(spec.deployment)[0]
    renewed = harness.spec("fastapi", entrypoint="main:app", mode=spec.config.mode, env={"GENERATION": "2"})
    renewed = type(spec)(spec.app, spec.deployment, spec.code_dir, spec.venv_dir, renewed.config, renewed.env)
    await harness.runtime.deploy(renewed)
    ready = harness.ready(spec.deployment)
    assert len(ready) == 1 and ready[0].id != old.id
    env = json.loads((await get(await harness.acquire(spec.deployment), "/env"))[2])
    assert env["GENERATION"] == "2"
    assert any(i.id == old.id and i.state is InstanceState.STOPPED for i in harness.runtime.instances())


async def test_a_scale_only_change_keeps_the_instances_and_still_forks(harness: Harness) -> None:
    spec = harness.service("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    await harness.recorder.until(lambda: len(harness.ready(spec.deployment)) == 1)
    kept = harness.ready(spec.deployment)[0]
    wider = dataclasses.replace(spec, config=dataclasses.replace(spec.config, scale=ScaleConfig(min=1, max=3)))
    await harness.runtime.deploy(wider)
    assert [i.id for i in harness.ready(spec.deployment)] == [kept.id]
    await harness.runtime.scale_to(spec.deployment, 2, "test")
    added = [i for i in harness.ready(spec.deployment) if i.id != kept.id]
    assert len(added) == 1 and added[0].start_kind is StartKind.FORK


async def test_leaving_production_keeps_the_instances_until_they_idle_out(harness: Harness) -> None:
    spec = harness.service("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    await harness.recorder.until(lambda: len(harness.ready(spec.deployment)) == 1)
    kept = harness.ready(spec.deployment)[0]
    preview = dataclasses.replace(
        spec.config, mode=Mode.FUNCTION, preload=False, scale=ScaleConfig(min=0, idle_timeout=0.5)
    )
    await harness.runtime.deploy(dataclasses.replace(spec, config=preview))
    assert [i.id for i in harness.ready(spec.deployment)] == [kept.id]  # no restart, no fresh import
    await harness.recorder.until(lambda: not harness.ready(spec.deployment))
    stopped = next(i for i in harness.runtime.instances() if i.id == kept.id)
    assert "idle" in stopped.reason


async def test_restart_starts_new_instances_before_the_old_drain(harness: Harness) -> None:
    spec = harness.service("fastapi", entrypoint="main:app", scale=ScaleConfig(min=2))
    await harness.runtime.deploy(spec)
    await harness.recorder.until(lambda: len(harness.ready(spec.deployment)) == 2)
    old = {i.id for i in harness.ready(spec.deployment)}
    await harness.runtime.restart(spec.deployment)
    new = {i.id for i in harness.ready(spec.deployment)}
    assert len(new) == 2 and not new & old
    order = [(info.id, info.state) for info in harness.recorder.changes]
    first_drain = next(n for n, (i, s) in enumerate(order) if s is InstanceState.DRAINING)
    ready_new = [n for n, (i, s) in enumerate(order) if i in new and s is InstanceState.READY]
    assert max(ready_new) < first_drain


async def test_scale_to_converges_within_min_and_max(harness: Harness) -> None:
    spec = harness.function("handler", entrypoint="handler:handler", scale=ScaleConfig(max=3))
    await harness.runtime.deploy(spec)
    await harness.runtime.scale_to(spec.deployment, 5, "test")
    assert len(harness.ready(spec.deployment)) == 3
    await harness.runtime.scale_to(spec.deployment, 1, "test")
    assert len(harness.ready(spec.deployment)) == 1
    assert harness.runtime.stats(spec.deployment).draining == 0


async def test_many_waiters_cause_one_start_and_never_beyond_max(harness: Harness) -> None:
    spec = harness.function("handler", entrypoint="handler:handler", scale=ScaleConfig(max=2, concurrency=10))
    await harness.runtime.deploy(spec)
    for waiting in range(1, 11):
        harness.runtime.request_capacity(spec.deployment, waiting)
    assert harness.runtime.stats(spec.deployment).starting == 1
    harness.runtime.request_capacity(spec.deployment, 100)
    assert harness.runtime.stats(spec.deployment).starting == 2
    await harness.recorder.until(lambda: harness.runtime.stats(spec.deployment).ready == 2)
    assert harness.runtime.stats(spec.deployment).capacity == 20
    # each start for waiting requests is a scale decision, recorded once: 0 -> 1, then 1 -> 2
    assert harness.recorder.messages("scale") == [
        f"{spec.deployment}: 0 -> 1 instances (a request is waiting for a free slot)",
        f"{spec.deployment}: 1 -> 2 instances (100 requests are waiting for a free slot)",
    ]


async def test_slots_go_to_the_least_loaded_instance_and_count_synchronously(harness: Harness) -> None:
    spec = harness.function("handler", entrypoint="handler:handler", scale=ScaleConfig(concurrency=2))
    await harness.runtime.deploy(spec)
    await harness.runtime.scale_to(spec.deployment, 2, "test")
    slots = [harness.runtime.try_acquire(spec.deployment) for _ in range(4)]
    assert all(s is not None for s in slots)
    assert harness.runtime.try_acquire(spec.deployment) is None
    assert len({s.instance for s in slots if s}) == 2
    assert harness.runtime.stats(spec.deployment).in_flight == 4
    for slot in slots:
        assert slot is not None
        slot.release()
        slot.release()  # exactly once, however often
    assert harness.runtime.stats(spec.deployment).in_flight == 0
    assert harness.runtime.stats(spec.deployment).last_request_at is not None


async def test_start_instance_returns_a_ready_instance_or_raises(harness: Harness) -> None:
    spec = harness.function("handler", entrypoint="handler:handler")
    await harness.runtime.deploy(spec)
    await harness.recorder.until(lambda: "zygote.started" in harness.recorder.kinds())
    info = await harness.runtime.start_instance(spec.deployment)
    assert info.state is InstanceState.READY and info.start_kind is StartKind.FORK
    status, _, body = await http(info.host, info.port, "/text")
    assert (status, body) == (200, b"hello world")
    broken = harness.function("crash", entrypoint="main:app", preload=False)
    await harness.runtime.deploy(broken)
    try:
        await harness.runtime.start_instance(broken.deployment)
    except Unavailable as exc:
        assert "exited with status 3 before it was ready" in str(exc)
    else:
        raise AssertionError("a crashing app started")


async def test_retire_stops_everything_and_forgets_the_deployment(harness: Harness) -> None:
    spec = harness.service("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    await harness.recorder.until(lambda: len(harness.ready(spec.deployment)) == 1)
    started = time.monotonic()
    await harness.runtime.retire(spec.deployment)
    assert time.monotonic() - started < 5
    assert harness.runtime.instances(spec.deployment) == []
    assert harness.runtime.try_acquire(spec.deployment) is None
    harness.runtime.request_capacity(spec.deployment, 1)
    assert harness.runtime.stats(spec.deployment).starting == 0
    try:
        await harness.runtime.start_instance(spec.deployment)
    except Unavailable:
        pass
    else:
        raise AssertionError("a retired deployment started an instance")


async def test_drain_stops_a_service_until_asked_again(harness: Harness) -> None:
    spec = harness.service("handler", entrypoint="handler:handler")
    await harness.runtime.deploy(spec)
    await harness.recorder.until(lambda: len(harness.ready(spec.deployment)) == 1)
    await harness.runtime.drain(spec.deployment)
    assert harness.live(spec.deployment) == []
    await asyncio.sleep(0.3)  # nothing should come back on its own (no readiness signal exists for "nothing")
    assert harness.live(spec.deployment) == []
    assert (await get(await harness.acquire(spec.deployment), "/"))[0] == 200


async def test_stats_say_when_the_newest_live_instance_started(harness: Harness) -> None:
    """What the autoscaler counts idleness from when no request came yet (a push, a promote)."""
    spec = harness.function("handler", entrypoint="handler:handler", scale=ScaleConfig(max=2))
    await harness.runtime.deploy(spec)
    assert harness.runtime.stats(spec.deployment).last_start_at is None
    first = await harness.runtime.start_instance(spec.deployment)
    assert harness.runtime.stats(spec.deployment).last_start_at == first.started_at
    assert harness.runtime.stats(spec.deployment).last_request_at is None
    await harness.runtime.scale_to(spec.deployment, 2, "test")
    newest = max(i.started_at for i in harness.runtime.instances(spec.deployment) if i.state is InstanceState.READY)
    assert newest > first.started_at
    assert harness.runtime.stats(spec.deployment).last_start_at == newest
    await harness.runtime.scale_to(spec.deployment, 0, "test")
    assert harness.runtime.stats(spec.deployment).last_start_at is None  # only live instances count
