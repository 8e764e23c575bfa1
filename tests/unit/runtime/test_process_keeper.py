"""Process types in a real LocalRuntime: counted, scaled down by a new spec, checked by
`probe_process`, and left alone by what counts only (the web instances are not restarted)."""

from dataclasses import replace

from roost.model import HealthCheck, InstanceState, ProcessType
from roost.runtime import DeploymentSpec
from roost.runtime.process_keeper import process_spec, same_but_count
from roost.runtime.supervisor import same_instances
from tests.unit.runtime.conftest import Harness

WORKER = (
    "python -c 'import os, time; "
    'print("worker up, PORT=" + os.environ.get("PORT", "none"), flush=True); time.sleep(600)\''
)
BROKEN = "python -c 'import sys; print(\"no queue\", flush=True); sys.exit(4)'"


def with_workers(spec: DeploymentSpec, count: int, command: str = WORKER) -> DeploymentSpec:
    worker = ProcessType(name="worker", command=command, count=count, ready_after=0.3, grace=1.0)
    return replace(spec, config=replace(spec.config, processes=(worker,)))


def workers(harness: Harness, spec: DeploymentSpec, state: InstanceState) -> list[str]:
    return [i.id for i in harness.runtime.instances(spec.deployment) if i.process == "worker" and i.state is state]


async def test_a_process_type_runs_its_count_and_scales_down(harness: Harness) -> None:
    spec = with_workers(harness.function("handler", entrypoint="main:handler"), 2)
    await harness.runtime.deploy(spec)  # returns once the new workers are ready
    assert len(workers(harness, spec, InstanceState.READY)) == 2
    (stats,) = harness.runtime.process_stats(spec.deployment)
    assert (stats.process, stats.wanted, stats.ready, stats.restarts) == ("worker", 2, 2, 0)
    assert harness.runtime.stats(spec.deployment).ready == 0  # a function's web instances: none yet
    assert harness.runtime.try_acquire(spec.deployment) is None  # a worker never takes a request

    await harness.runtime.deploy(with_workers(spec, 1))
    await harness.recorder.until(lambda: len(workers(harness, spec, InstanceState.STOPPED)) == 1)
    assert len(workers(harness, spec, InstanceState.READY)) == 1
    stopped = [i for i in harness.runtime.instances(spec.deployment) if i.state is InstanceState.STOPPED]
    assert stopped[0].reason == "scaled down"
    assert "worker up, PORT=none" in "\n".join(line.text for line in harness.logs.read(spec.app))


async def test_probe_process_says_how_a_worker_ended_with_its_last_lines(harness: Harness) -> None:
    spec = with_workers(harness.function("handler", entrypoint="main:handler"), 0, command=BROKEN)
    result = await harness.runtime.probe_process(spec, "worker")
    assert not result.ok
    assert result.message.startswith("process type 'worker' exited with status 4 within 0.3s of starting")
    assert "no queue" in result.output
    good = await harness.runtime.probe_process(with_workers(spec, 0), "worker")
    assert good.ok and good.message == "process type 'worker' stayed up 0.3s"


def test_counts_alone_restart_nothing(harness: Harness) -> None:
    spec = with_workers(harness.function("handler", entrypoint="main:handler"), 1)
    assert same_instances(spec, with_workers(spec, 3))
    assert not same_instances(spec, with_workers(spec, 1, command=BROKEN))
    worker = spec.config.processes[0]
    assert same_but_count(process_spec(spec, worker), process_spec(spec, replace(worker, count=5)))
    assert not same_but_count(process_spec(spec, worker), process_spec(replace(spec, env={"A": "1"}), worker))


async def test_a_crashing_worker_backs_off_until_crash_looping_and_no_web_waiter_hears_of_it(
    harness: Harness,
) -> None:
    spec = with_workers(harness.function("handler", entrypoint="main:handler"), 1, command=BROKEN)
    await harness.runtime.deploy(spec)
    await harness.recorder.until(lambda: harness.runtime.process_stats(spec.deployment)[0].crash_looping)
    (stats,) = harness.runtime.process_stats(spec.deployment)
    assert stats.restarts >= 3 and stats.ready == 0
    assert "crash-looping" in stats.last_failure and "no queue" in stats.last_failure
    backoffs = harness.recorder.messages("instance.backoff")
    assert backoffs and backoffs[0].startswith("restarting a worker instance")
    assert harness.recorder.failures == []  # the edge's waiters fail fast for web instances only
    assert not harness.runtime.stats(spec.deployment).crash_looping  # the web side is not crash-looping


def test_a_process_type_takes_neither_the_web_check_nor_the_release(harness: Harness) -> None:
    spec = with_workers(harness.function("handler", entrypoint="main:handler"), 1)
    spec = replace(spec, config=replace(spec.config, check=HealthCheck(path="/healthz"), release="python migrate.py"))
    derived = process_spec(spec, spec.config.processes[0])
    assert (derived.config.check, derived.config.release, derived.config.command) == (None, None, WORKER)
