"""What `roost list` shows of an app: the one word for its state, and which deployment is production."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.applog import LogBook
from roost.builder import Builder
from roost.control import Control, Urls
from roost.control.overview import app_state
from roost.model import (
    App,
    AppConfig,
    AppName,
    Deployment,
    DeploymentId,
    DeploymentStatus,
    DesiredState,
    InstanceId,
    InstanceState,
    Mode,
    TrafficEntry,
)
from roost.registry import Registry
from roost.runtime import RUNNER_REQUIREMENTS, LocalRuntime
from roost.runtime.protocol import InstanceInfo, StartKind
from roost.store import Store

NAME = AppName("hello")
DEPLOYMENT = DeploymentId("dep00001")


def app(mode: Mode = Mode.SERVICE, desired: DesiredState = DesiredState.RUNNING) -> App:
    return App(NAME, mode, desired, 0.0, 0.0, AppConfig(mode=mode))


def deployment(status: DeploymentStatus = DeploymentStatus.READY) -> Deployment:
    return Deployment(DEPLOYMENT, NAME, status, "digest", "", 0.0, 1.0, AppConfig())


def instance(state: InstanceState, number: int = 1) -> InstanceInfo:
    return InstanceInfo(
        InstanceId(f"i{number}"), NAME, DEPLOYMENT, state, "127.0.0.1", 9000 + number, None, 0.0, StartKind.FORK
    )


@pytest.mark.parametrize(
    ("states", "shown"),
    [
        ([InstanceState.READY], "running"),
        ([InstanceState.STARTING, InstanceState.READY], "running"),
        ([InstanceState.STARTING], "starting"),  # was "running" with nothing able to answer yet
        ([InstanceState.DRAINING, InstanceState.STARTING], "starting"),
    ],
)
def test_running_means_an_instance_is_ready(states: list[InstanceState], shown: str) -> None:
    live = [instance(state, n) for n, state in enumerate(states)]
    assert app_state(app(), [deployment()], live, crash_looping=False) == shown


def test_without_instances_a_function_sleeps_and_a_service_is_starting() -> None:
    assert app_state(app(Mode.FUNCTION), [deployment()], [], crash_looping=False) == "sleeping"
    assert app_state(app(Mode.SERVICE), [deployment()], [], crash_looping=False) == "starting"


def test_stopped_crash_looping_building_failed_and_empty_come_first() -> None:
    ready = [instance(InstanceState.READY)]
    assert app_state(app(desired=DesiredState.STOPPED), [deployment()], ready, crash_looping=False) == "stopped"
    assert app_state(app(), [deployment()], ready, crash_looping=True) == "crash-looping"
    assert app_state(app(), [deployment(DeploymentStatus.BUILDING)], ready, crash_looping=False) == "building"
    assert app_state(app(), [deployment(DeploymentStatus.FAILED)], [], crash_looping=False) == "failed"
    assert app_state(app(), [], [], crash_looping=False) == "empty"


async def test_production_in_the_summary_is_the_heaviest_deployment_not_the_newest(tmp_path: Path) -> None:
    """With a 10% canary of a newer deployment, production is still the 90% one, as the edge,
    cron and `roost info` say (model.Traffic); `roost list` once named the canary."""
    home = tmp_path / "roost"
    store = await Store.open(home / "roost.db")
    logs = LogBook(home / "logs")
    runtime = LocalRuntime(home, logs, lambda *event: None)
    try:
        await store.create_app(NAME, Mode.FUNCTION, AppConfig())
        for name in ("aaaaaaaa", "bbbbbbbb"):  # created in this order: bbbbbbbb is the newer
            await store.create_deployment(NAME, DeploymentId(name), "sha256:0", name, AppConfig())
            await store.finish_deployment(DeploymentId(name), DeploymentStatus.READY, 1.0)
        split = [TrafficEntry(DeploymentId("aaaaaaaa"), 90), TrafficEntry(DeploymentId("bbbbbbbb"), 10)]
        await store.set_traffic(NAME, split, "traffic", "canary")
        registry, builder = Registry(home / "blobs"), Builder(home, RUNNER_REQUIREMENTS)
        urls = Urls(domain="localhost", port=8080)
        control = Control(store, registry, builder, runtime, logs, home, urls)
        [summary] = await control.summaries()
    finally:
        await runtime.close()
        await store.close()
        logs.close()
    assert summary.production is not None and summary.production.id == "aaaaaaaa"
    assert [t.deployment for t in summary.traffic] == ["aaaaaaaa", "bbbbbbbb"]
