"""Limits enforced by watching (roost/runtime/limit_watcher.py) against real instances: the CPU-time
budget recycles an instance that burns CPU after it answered (no request is left to time out),
and, on the no-cgroup path, rlimits are set on the real child and an instance over its memory
limit by RSS is killed and reported. The pure decision `over_budget` is checked with a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from roost.applog import LogBook
from roost.model import InstanceState, LimitsConfig, ScaleConfig
from roost.runtime import LocalRuntime
from roost.runtime.sandbox import CpuSamples, SandboxSettings, over_budget
from tests.unit.runtime.conftest import Harness, Recorder, get, kill_survivors

MB = 1024 * 1024
WINDOW = 1.0  # a short CPU window so the budget is judged within a second or two

HOSTILE = {
    "burner": """
        import threading

        def _burn():
            while True:
                pass

        def handler(request):
            if request.path == "/burn":
                threading.Thread(target=_burn, daemon=True).start()
                return "burning after the answer"
            return "idle"
    """,
    "hog": """
        import os, threading, time
        HELD = []

        def _hog():
            time.sleep(0.5)  # after the answer has gone out
            HELD.append(os.urandom(1024) * (160 * 1024))  # 160 MB, every page touched

        def handler(request):
            if request.path == "/hog":
                threading.Thread(target=_hog, daemon=True).start()
                return "holding"
            if request.path == "/pid":
                return {"pid": os.getpid()}
            if request.path == "/fail":
                raise KeyError("an older, unrelated failure")
            return "small"
    """,
}

# -- the pure decision, with a fake clock -----------------------------------------------------------------------------


def feed(samples: list[tuple[float, float]]) -> CpuSamples:
    usage = CpuSamples()
    for now, cpu in samples:
        usage.add(now, cpu)
    return usage


def test_over_budget_reports_the_cpu_used_over_the_window() -> None:
    usage = feed([(float(t), 0.9 * t) for t in range(11)])  # 0.9 core for 10 s
    assert over_budget(usage, 10.0, 10.0, 4.0) == 9.0
    assert over_budget(usage, 10.0, 10.0, 9.5) is None


def test_over_budget_waits_for_samples_spanning_the_window() -> None:
    """A start-up burst is not judged on a second of samples: 0.9 core for 5 s is not yet over."""
    usage = feed([(float(t), 0.9 * t) for t in range(6)])
    assert over_budget(usage, 5.0, 10.0, 1.0) is None
    usage.add(9.0, 8.1)  # 9 s of samples: 90 % of the window is enough
    assert over_budget(usage, 9.0, 10.0, 1.0) == 8.1


def test_over_budget_forgets_samples_older_than_the_window() -> None:
    """A burst long ago and quiet since: only the last window counts."""
    burst = [(0.0, 0.0), (5.0, 5.0)]
    quiet = [(float(t), 5.0 + 0.1 * (t - 5)) for t in range(6, 21)]  # 0.1 core from then on
    assert over_budget(feed(burst + quiet[:5]), 10.0, 10.0, 2.0) == 5.5  # the burst is in the window
    assert over_budget(feed(burst + quiet), 20.0, 10.0, 2.0) is None  # 1 s over the last 10 s


def test_no_budget_or_no_samples_is_never_over() -> None:
    assert over_budget(CpuSamples(), 10.0, 10.0, 1.0) is None
    assert over_budget(feed([(0.0, 0.0), (10.0, 10.0)]), 10.0, 10.0, 0.0) is None


# -- real instances ----------------------------------------------------------------------------------------------------


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    root = tmp_path / "hostile"
    for name, source in HOSTILE.items():
        (root / name).mkdir(parents=True)
        (root / name / "main.py").write_text(textwrap.dedent(source).lstrip())
    return root


Make = Callable[[SandboxSettings], Awaitable[Harness]]


@pytest.fixture
async def policed(tmp_path: Path, venv: Path, hostile: Path) -> AsyncIterator[Make]:
    """Like conftest's `harness`, with the sandbox settings chosen by the test (a short CPU
    window, cgroups off); every runtime made is closed and checked to leave no process."""
    made: list[tuple[LocalRuntime, Recorder, LogBook]] = []

    async def make(sandbox: SandboxSettings) -> Harness:
        recorder = Recorder()
        home = tmp_path / f"home{len(made)}"
        logs = LogBook(home / "logs")
        runtime = LocalRuntime(
            home, logs, recorder, grace_drain=2.0, grace_kill=2.0, idle_check_interval=0.1, sandbox=sandbox
        )
        made.append((runtime, recorder, logs))
        runtime.subscribe(recorder)
        await runtime.start()
        return Harness(runtime, recorder, home, logs, venv, hostile)

    try:
        yield make
    finally:
        survivors: list[int] = []
        for runtime, recorder, logs in made:
            try:
                await asyncio.wait_for(runtime.close(), 30)
            finally:
                logs.close()
                survivors += kill_survivors(recorder.pids)
        assert not survivors, f"processes outlived close(): {survivors}"


async def test_the_cpu_budget_recycles_an_instance_that_burns_after_answering(policed: Make) -> None:
    """No request is in flight, so no request timeout can be the reason: the budget is."""
    harness: Harness = await policed(SandboxSettings(cpu_window=WINDOW))
    spec = harness.function("burner", entrypoint="main:handler", limits=LimitsConfig(cpu=1.0, cpu_budget=0.3))
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    burning = slot.instance
    status, _, body = await get(slot, "/burn")
    assert (status, body) == (200, b"burning after the answer")
    await harness.recorder.until(lambda: harness.recorder.messages("instance.cpu_budget"))
    [message] = harness.recorder.messages("instance.cpu_budget")
    assert f"instance {burning} used" in message and "over its budget of 0.3s" in message, message
    assert "limits.cpu_budget" in message and "recycling it" in message, message
    await harness.recorder.until(lambda: harness.recorder.messages("instance.stopped"))
    [stopped] = [m for m in harness.recorder.messages("instance.stopped") if burning in m]
    assert "over its budget of 0.3s" in stopped, stopped
    [info] = [i for i in harness.runtime.instances(spec.deployment) if i.id == burning]
    assert info.state is InstanceState.STOPPED


async def test_an_idle_instance_is_within_its_budget(policed: Make) -> None:
    """The same app and budget, without the burn: a few windows pass and nothing is recycled."""
    harness: Harness = await policed(SandboxSettings(cpu_window=WINDOW))
    spec = harness.function("burner", entrypoint="main:handler", limits=LimitsConfig(cpu=1.0, cpu_budget=0.3))
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    assert (await get(slot, "/"))[0] == 200
    pool = harness.runtime._pools[spec.deployment]
    [instance] = pool.ready()
    # wait until the watcher has judged three full windows of samples of this instance
    await harness.recorder.until(lambda: len(instance.usage.samples) >= 3 * WINDOW / 0.1)
    assert "instance.cpu_budget" not in harness.recorder.kinds()
    assert instance.state is InstanceState.READY


# -- without cgroups: rlimits and RSS polling -------------------------------------------------------------------------

NO_CGROUPS = SandboxSettings(cgroups=False, bwrap=False, separate_users=False)


def limits_of(pid: int) -> dict[str, tuple[str, str]]:
    """/proc/<pid>/limits as {'Max core file size': ('0', '0'), ...}."""
    found = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        found[name] = (soft, hard)
    return found


async def test_without_cgroups_the_start_up_line_says_the_fallback_once(
    policed: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="roost.runtime")
    harness: Harness = await policed(NO_CGROUPS)
    await harness.runtime.start()  # idempotent: detected and said once
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sandbox:")]
    assert len(lines) == 1, lines
    assert "no cgroups (cgroups disabled)" in lines[0] and "rlimits and RSS polling instead" in lines[0], lines
    assert not harness.runtime.sandbox.has_cgroups()


async def test_without_cgroups_rlimits_are_set_on_the_real_instance(policed: Make) -> None:
    harness: Harness = await policed(NO_CGROUPS)
    spec = harness.function("hog", entrypoint="main:handler", limits=LimitsConfig(tmp=8 * MB))
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    status, _, body = await get(slot, "/pid")
    assert status == 200
    pid = int(body.split(b":")[1].strip(b" }"))
    limits = limits_of(pid)
    assert limits["Max core file size"] == ("0", "0"), limits
    assert limits["Max file size"] == (str(8 * MB), str(8 * MB)), limits  # no bwrap: TMPDIR capped per file
    [info] = harness.ready(spec.deployment)
    assert info.pid == pid


async def test_without_cgroups_rlimit_nproc_counts_the_whole_app_under_its_uid(policed: Make) -> None:
    """RLIMIT_NPROC counts per uid, so with the app's own uid it covers all its instances."""
    harness: Harness = await policed(NO_CGROUPS)
    sandbox = harness.runtime.sandbox
    spec = harness.function("hog", entrypoint="main:handler", limits=LimitsConfig(pids=10), scale=ScaleConfig(max=3))
    sandbox._uids[spec.app] = 200123  # what prepare() records when root with separate users
    rlimits = {which: (soft, hard) for which, soft, hard in sandbox._rlimits(spec, None)}
    assert rlimits[resource.RLIMIT_NPROC] == (40, 40)
    assert rlimits[resource.RLIMIT_CORE] == (0, 0)
    assert resource.RLIMIT_AS not in rlimits  # reserved address space is not memory: RSS is polled instead


async def test_without_cgroups_an_instance_over_its_memory_by_rss_is_killed_and_named(policed: Make) -> None:
    harness: Harness = await policed(NO_CGROUPS)
    spec = harness.function("hog", entrypoint="main:handler", limits=LimitsConfig(memory=96 * MB))
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    hog = slot.instance
    status, _, body = await get(slot, "/hog")
    assert (status, body) == (200, b"holding")  # answered: the poll, not the request, must catch it
    await harness.recorder.until(lambda: any(hog in m for m in harness.recorder.messages("instance.crashed")))
    [crashed] = [m for m in harness.recorder.messages("instance.crashed") if hog in m]
    assert "exceeded its memory limit of 96 MB (RSS" in crashed and "when polled" in crashed, crashed


async def test_an_oom_kill_quotes_no_older_traceback_of_the_instance(policed: Make) -> None:
    """A request that failed long before (its traceback in the instance's output) is not what
    the memory kill that came later quotes: only what the instance wrote since it last got busy."""
    harness: Harness = await policed(NO_CGROUPS)
    spec = harness.function("hog", entrypoint="main:handler", limits=LimitsConfig(memory=96 * MB))
    await harness.runtime.deploy(spec)
    slot = await harness.acquire(spec.deployment)
    hog = slot.instance
    status, _, _ = await get(slot, "/fail")
    assert status == 500
    await harness.recorder.until(lambda: any("older, unrelated" in line.text for line in harness.logs.read(spec.app)))
    slot = await harness.acquire(spec.deployment)
    assert slot.instance == hog
    status, _, body = await get(slot, "/hog")
    assert (status, body) == (200, b"holding")
    await harness.recorder.until(lambda: any(hog in m for m in harness.recorder.messages("instance.crashed")))
    [(message, data)] = [(m, d) for k, m, d in harness.recorder.events if k == "instance.crashed" and hog in m]
    assert "exceeded its memory limit of 96 MB" in message, message
    assert "older, unrelated" not in message and "Traceback" not in message, message
    assert "over the memory limit" in message, message  # Roost's own line about the kill, written since
    quoted = data["output"]
    assert isinstance(quoted, list) and not any("older, unrelated" in str(line) for line in quoted), quoted
