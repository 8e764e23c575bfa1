"""A dying process is state: a killed service instance is replaced and the event says how it
died; a crashing app backs off with growing delays and says why."""

import os
import re
import signal
from dataclasses import replace

from roost.model import InstanceState
from tests.unit.runtime.conftest import Harness, get, without_preload


async def test_a_service_instance_killed_by_sigkill_is_replaced(harness: Harness) -> None:
    recorder = harness.recorder
    spec = harness.service("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    await recorder.until(lambda: len(harness.ready(spec.deployment)) == 1)
    assert (await get(await harness.acquire(spec.deployment), "/say?line=still+here"))[0] == 200
    victim = harness.ready(spec.deployment)[0]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    await recorder.until(lambda: any(i.id != victim.id for i in harness.ready(spec.deployment)))
    crashed = recorder.messages("instance.crashed")
    assert crashed == [f"instance {victim.id} killed by SIGKILL: lifespan startup | still here"]
    finished = [i for i in harness.runtime.instances(spec.deployment) if i.id == victim.id]
    assert finished[0].state is InstanceState.CRASHED
    assert finished[0].reason.startswith("killed by SIGKILL")
    assert (await get(await harness.acquire(spec.deployment), "/"))[0] == 200


async def test_a_crash_looping_service_backs_off_and_says_why(harness: Harness) -> None:
    recorder = harness.recorder
    spec = without_preload(harness.service("crash", entrypoint="main:app"))
    await harness.runtime.deploy(spec)
    await recorder.until(lambda: len(recorder.messages("instance.backoff")) >= 3, within=60)
    delays = [data["delay"] for kind, _, data in recorder.events if kind == "instance.backoff"]
    assert delays[:3] == sorted(delays[:3]) and delays[0] < delays[2], delays
    assert all(isinstance(d, float) and d <= 1.0 for d in delays)
    crash = recorder.messages("instance.crashed")[0]
    assert "exited with status 3 before it was ready" in crash
    assert "boom at import" in crash
    assert any("RuntimeError: boom at import" in reason for reason in recorder.failures)
    reasons = [i.reason for i in harness.runtime.instances(spec.deployment) if i.state is InstanceState.CRASHED]
    assert any(re.match(r"crash-looping \(\d+ crashes in a row\): exited with status 3", r) for r in reasons), reasons
    restarts = [i.restarts for i in recorder.changes if i.state is InstanceState.STARTING]
    assert max(restarts) >= 2


async def test_a_function_failing_to_start_fails_its_waiters_fast(harness: Harness) -> None:
    recorder = harness.recorder
    spec = harness.function("crash", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    harness.runtime.request_capacity(spec.deployment, 1)
    await recorder.until(lambda: len(recorder.failures) >= 1)
    assert "boom at import" in recorder.failures[0]
    harness.runtime.request_capacity(spec.deployment, 1)  # within the back-off: refused at once
    await recorder.until(lambda: len(recorder.failures) >= 2)
    assert "next start in" in recorder.failures[1]
    assert "zygote.died" in recorder.kinds()


async def test_a_command_that_never_listens_fails_to_start(harness: Harness) -> None:
    harness.runtime.settings = replace(harness.runtime.settings, timeout_start=1.0)
    recorder = harness.recorder
    spec = harness.function("never", command="python server.py")
    await harness.runtime.deploy(spec)
    harness.runtime.request_capacity(spec.deployment, 1)
    await recorder.until(lambda: len(recorder.failures) >= 1)
    assert re.search(
        r"never listened on \$PORT \(port \d+\) within 1s: not listening, on purpose", recorder.failures[0]
    )
