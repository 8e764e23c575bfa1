"""Stopping an instance: the drain's grace runs out, SIGTERM is ignored, a grandchild hides in
the process group. In each case the instance ends, and nothing of it is left running."""

import asyncio
import contextlib
import os
import select
import time
from dataclasses import replace

import psutil

from roost.model import InstanceState
from tests.unit.runtime.conftest import Harness, get


def is_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def gone_soon(pid: int) -> bool:
    """Gone, or gone within 5 s: a SIGKILLed process ends when the kernel next schedules it,
    which on a busy machine can be just after the instance's own end was reported."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        select.select([pidfd], [], [], 5)  # readable once it has ended (a zombie included)
    finally:
        os.close(pidfd)
    return is_gone(pid)


def finished(harness: Harness, instance: str) -> InstanceState | None:
    return next((i.state for i in harness.runtime.instances() if i.id == instance), None)


async def test_a_request_still_in_flight_when_the_grace_runs_out_does_not_keep_the_instance(
    harness: Harness,
) -> None:
    harness.runtime.settings = replace(harness.runtime.settings, grace_drain=0.3)
    spec = harness.service("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    pid = next(i.pid for i in harness.ready(spec.deployment) if i.id == slot.instance)
    assert pid is not None
    request = asyncio.ensure_future(get(slot, "/slow?ms=60000"))
    await harness.runtime.stop_instance(slot.instance, "grace test")
    assert finished(harness, slot.instance) is InstanceState.STOPPED
    assert is_gone(pid)
    outcome: object = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        outcome = (await request)[0]
    assert outcome != 200  # cut off, not answered: the grace is a limit, not a hope
    drained = [m for m in harness.recorder.messages("instance.draining") if slot.instance in m]
    assert "1 request(s) in flight" in drained[0]


async def test_an_app_that_ignores_sigterm_is_killed_with_its_whole_group(harness: Harness) -> None:
    spec = harness.service("stubborn", command="python server.py")
    await harness.runtime.deploy(spec)
    await harness.recorder.until(lambda: len(harness.ready(spec.deployment)) == 1)
    instance = harness.ready(spec.deployment)[0]
    assert instance.pid is not None

    def grandchild() -> int | None:
        said = [line.text for line in harness.logs.read("stubborn") if line.text.startswith("grandchild ")]
        return int(said[0].split()[1]) if said else None

    await harness.recorder.until(lambda: grandchild() is not None)
    hidden = grandchild()
    assert hidden is not None and not is_gone(hidden)
    app = psutil.Process(hidden).parent()  # the app's process (the instance's pid may be its sandbox's)
    assert app is not None and app.pid in {instance.pid, *(p.pid for p in psutil.Process(instance.pid).children())}
    assert os.getpgid(hidden) == os.getpgid(app.pid)  # in the app's process group, whoever leads it
    started = time.monotonic()
    await harness.runtime.stop_instance(instance.id, "stubborn test")
    took = time.monotonic() - started
    assert finished(harness, instance.id) is InstanceState.STOPPED
    assert is_gone(instance.pid) and gone_soon(hidden)
    assert took >= harness.runtime.settings.grace_kill  # TERM was ignored: it took the KILL after the grace
    assert "got SIGTERM, ignoring it" in [line.text for line in harness.logs.read("stubborn")]
