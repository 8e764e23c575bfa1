"""The zygote: forking is much faster than a fresh start; a dead zygote is replaced while
instances start fresh; an idle one is evicted; an app with import-time threads is not forked."""

import json
import os
import signal
import time
from dataclasses import replace

import pytest

from roost.model import ScaleConfig
from roost.runtime import StartKind
from tests.unit.runtime.conftest import Harness, get, without_preload


async def first_response(harness: Harness, deployment: str) -> tuple[float, StartKind]:
    """Seconds from "no instance" to the first response, as a request at the edge would see it."""
    started = time.monotonic()
    slot = await harness.acquire(deployment)  # type: ignore[arg-type]
    kind = slot.start_kind
    status, _, _ = await get(slot, "/")
    assert status == 200
    return time.monotonic() - started, kind


async def test_a_fork_answers_much_sooner_than_a_fresh_start(harness: Harness) -> None:
    forked = harness.function("fastapi", entrypoint="main:app")
    fresh = without_preload(harness.function("fastapi", entrypoint="main:app"))
    await harness.runtime.deploy(forked)
    await harness.runtime.deploy(fresh)
    await harness.recorder.until(lambda: "zygote.started" in harness.recorder.kinds())
    fork_times, fresh_times = [], []
    for _ in range(3):
        seconds, kind = await first_response(harness, forked.deployment)
        assert kind is StartKind.FORK
        fork_times.append(seconds)
        seconds, kind = await first_response(harness, fresh.deployment)
        assert kind is StartKind.FRESH
        fresh_times.append(seconds)
        await harness.runtime.drain(forked.deployment)
        await harness.runtime.drain(fresh.deployment)
    assert min(fresh_times) > 3 * max(fork_times), (fork_times, fresh_times)


async def test_forked_instances_are_separate_processes_with_their_own_group(harness: Harness) -> None:
    spec = harness.function("fastapi", entrypoint="main:app", scale=ScaleConfig(concurrency=1))
    await harness.runtime.deploy(spec)
    one = await harness.acquire(spec.deployment)
    two = await harness.acquire(spec.deployment)
    assert one.instance != two.instance
    first = json.loads((await get(one, "/pid"))[2])
    second = json.loads((await get(two, "/pid"))[2])
    assert first["pid"] != second["pid"]
    assert first["pid"] == first["pgid"] and second["pid"] == second["pgid"]


async def test_a_dead_zygote_is_replaced_and_instances_start_fresh_meanwhile(harness: Harness) -> None:
    recorder = harness.recorder
    spec = harness.function("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    await recorder.until(lambda: recorder.kinds().count("zygote.started") == 1)
    zygote_pid = next(data["pid"] for kind, _, data in recorder.events if kind == "zygote.started")
    assert isinstance(zygote_pid, int)
    os.kill(zygote_pid, signal.SIGKILL)
    await recorder.until(lambda: "zygote.died" in recorder.kinds())
    assert "killed by SIGKILL" in recorder.messages("zygote.died")[0]
    slot = await harness.acquire(spec.deployment)
    assert slot.start_kind is StartKind.FRESH
    assert (await get(slot, "/"))[0] == 200
    await recorder.until(lambda: recorder.kinds().count("zygote.started") == 2)
    await harness.runtime.drain(spec.deployment)
    slot = await harness.acquire(spec.deployment)
    assert slot.start_kind is StartKind.FORK
    assert (await get(slot, "/"))[0] == 200


async def test_instances_outlive_their_zygote(harness: Harness) -> None:
    recorder = harness.recorder
    spec = harness.function("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    zygote_pid = next(data["pid"] for kind, _, data in recorder.events if kind == "zygote.started")
    assert isinstance(zygote_pid, int)
    os.kill(zygote_pid, signal.SIGKILL)
    await recorder.until(lambda: "zygote.died" in recorder.kinds())
    assert (await get(slot, "/"))[0] == 200
    await harness.runtime.stop_instance(slot.instance, "test")
    assert harness.runtime.instances(spec.deployment)[0].reason == "test"


async def test_an_idle_zygote_is_evicted_and_the_next_start_pays_the_import(harness: Harness) -> None:
    harness.runtime.settings = replace(harness.runtime.settings, zygote_idle=0.3)
    recorder = harness.recorder
    spec = harness.function("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    await recorder.until(lambda: "zygote.evicted" in recorder.kinds())
    slot = await harness.acquire(spec.deployment)
    assert slot.start_kind is StartKind.FRESH  # forked from a new zygote, but it waited for that zygote's import: cold
    assert recorder.kinds().count("zygote.started") == 2
    assert "had to import the app first" in recorder.messages("instance.started")[-1]
    assert (await get(slot, "/"))[0] == 200
    assert "zygote.evicted" in recorder.kinds()


async def test_a_zygote_is_never_evicted_while_its_instances_live(harness: Harness) -> None:
    harness.runtime.settings = replace(harness.runtime.settings, zygote_idle=0.2)
    spec = harness.service("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    await harness.recorder.until(lambda: len(harness.ready(spec.deployment)) == 1)
    started = time.monotonic()
    await harness.recorder.until(lambda: time.monotonic() - started > 1.0)
    assert "zygote.evicted" not in harness.recorder.kinds()


async def test_an_app_with_import_time_threads_is_not_forked(harness: Harness) -> None:
    recorder = harness.recorder
    spec = harness.function("threads", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    await recorder.until(lambda: "zygote.died" in recorder.kinds())
    assert "refused to preload" in recorder.messages("zygote.died")[0]
    slot = await harness.acquire(spec.deployment)
    assert slot.start_kind is StartKind.FRESH
    assert (await get(slot, "/"))[2] == b"threads"


async def test_a_start_that_waits_for_the_zygotes_import_is_cold(harness: Harness) -> None:
    recorder = harness.recorder
    spec = harness.function("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    assert "zygote.started" not in recorder.kinds()  # still importing: the first request waits for that
    slot = await harness.acquire(spec.deployment)
    assert slot.start_kind is StartKind.FRESH
    assert (await get(slot, "/"))[0] == 200
    assert "forked from a zygote that had to import the app first" in recorder.messages("instance.started")[0]


async def test_a_sync_endpoint_and_a_short_lived_warm_up_thread_still_preload(harness: Harness) -> None:
    """The warm-up leaves an AnyIO worker thread (a `def` endpoint) and a thread of the app's own that
    ends 0.3 s later: the zygote waits for both instead of counting them and refusing to preload."""
    recorder = harness.recorder
    spec = harness.function("syncfastapi", entrypoint="main:app", env={"LINGER": "0.3"})
    await harness.runtime.deploy(spec)
    await recorder.until(lambda: {"zygote.started", "zygote.died"} & set(recorder.kinds()))
    assert "zygote.died" not in recorder.kinds(), recorder.messages("zygote.died")
    slot = await harness.acquire(spec.deployment)
    assert slot.start_kind is StartKind.FORK
    assert (await get(slot, "/"))[2] == b'{"hello":"sync"}'


async def test_a_warm_up_thread_that_outlives_the_wait_refuses_preload(harness: Harness) -> None:
    recorder = harness.recorder
    spec = harness.function("syncfastapi", entrypoint="main:app", env={"LINGER": "60"})
    await harness.runtime.deploy(spec)
    await recorder.until(lambda: {"zygote.started", "zygote.died"} & set(recorder.kinds()))
    message = recorder.messages("zygote.died")[0]
    assert "refused to preload" in message and "lingerer" in message and "preload = false" in message


async def test_a_fork_from_the_spare_is_already_in_its_own_cgroup(harness: Harness) -> None:
    """The zygote announces each spare; the daemon moves it into a cgroup of its own before any
    request (a cgroup move waits for an RCU grace period), and the instance it becomes keeps that
    group. A spare that dies unused takes its group with it."""
    if not harness.runtime.sandbox.has_cgroups():
        pytest.skip("this host gives Roost no cgroups")
    spec = harness.function("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    await harness.recorder.until(lambda: "zygote.started" in harness.recorder.kinds())
    pool = harness.runtime._pools[spec.deployment]
    zygote = pool.zygote
    assert zygote is not None
    await harness.recorder.until(lambda: any(f.done() for f in zygote.spare_groups.values()))
    (spare_pid, making), *_ = zygote.spare_groups.items()
    ahead = making.result()
    assert ahead is not None and ahead.name.startswith("spare-")
    assert spare_pid in ahead.pids()

    slot = await harness.acquire(spec.deployment)
    instance = pool.instances[slot.instance]
    assert instance.child is not None and instance.child.pid == spare_pid
    assert instance.cgroup is ahead
    assert json.loads((await get(slot, "/pid"))[2])["pid"] in ahead.pids()

    await harness.recorder.until(lambda: any(f.done() for f in zygote.spare_groups.values()))
    (next_pid, next_making), *_ = zygote.spare_groups.items()
    next_group = next_making.result()
    assert next_group is not None and next_pid != spare_pid
    os.kill(next_pid, signal.SIGKILL)  # the next spare dies unused: its group is removed
    await harness.recorder.until(lambda: next_pid not in zygote.spare_groups)
    await harness.recorder.until(lambda: not next_group.procs_files()[0].parent.exists())
