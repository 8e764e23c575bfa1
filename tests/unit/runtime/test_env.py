"""An instance sees only its explicit environment: never the daemon's; its own TMPDIR, wiped
when it stops; and its output lands in the app's log under its id."""

import json
import os
from pathlib import Path

import pytest

from roost.model import InstanceState
from tests.unit.runtime.conftest import Harness, get

MARKER = "ROOST_TEST_DAEMON_ONLY"


@pytest.mark.parametrize("preload", [True, False], ids=["fork", "fresh"])
async def test_the_environment_is_clean_and_per_instance(harness: Harness, preload: bool) -> None:
    os.environ[MARKER] = "leaked"
    try:
        spec = harness.function("fastapi", entrypoint="main:app", preload=preload, env={"GREETING": "hi"})
        await harness.runtime.deploy(spec)
        slot = await harness.acquire(spec.deployment)
        instance, port = slot.instance, slot.port
        env = json.loads((await get(slot, "/env"))[2])
    finally:
        del os.environ[MARKER]
    assert MARKER not in env
    assert env["GREETING"] == "hi"
    assert env["PORT"] == str(port)
    assert env["ROOST_INSTANCE"] == instance
    assert (env["ROOST_APP"], env["ROOST_DEPLOYMENT"]) == (spec.app, spec.deployment)
    assert env["PATH"] == f"{harness.venv}/bin:/usr/bin:/bin"
    assert (env["PYTHONUNBUFFERED"], env["MALLOC_ARENA_MAX"]) == ("1", "2")
    if harness.runtime.sandbox.uses_bwrap():
        # TMPDIR is the sandbox's private tmpfs (a fork's own directory in its zygote's); tests/unit/sandbox
        # and tests/e2e/test_sandbox.py check that it is wiped
        assert env["TMPDIR"] == env["HOME"] == ("/tmp/" + instance if preload else "/tmp")
        await harness.runtime.stop_instance(instance, "test")  # type: ignore[arg-type]
        return
    assert env["TMPDIR"] == env["HOME"] == str(harness.home / "run" / "tmp" / instance)
    assert Path(env["TMPDIR"]).is_dir()
    await harness.runtime.stop_instance(instance, "test")  # type: ignore[arg-type]
    await harness.recorder.until(lambda: not Path(env["TMPDIR"]).exists())


async def test_each_output_line_is_logged_under_the_instance(harness: Harness) -> None:
    spec = harness.function("fastapi", entrypoint="main:app")
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    instance = slot.instance
    await get(slot, "/say?line=hello+log")
    await harness.runtime.stop_instance(instance, "test")
    lines = harness.logs.read(spec.app)
    assert any(line.source == instance and line.text == "hello log" for line in lines)
    assert all(line.deployment == spec.deployment for line in lines)
    assert harness.runtime.instances(spec.deployment)[0].state is InstanceState.STOPPED
