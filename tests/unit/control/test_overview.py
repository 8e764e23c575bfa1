"""The one word `roost list` shows for an app's state."""

from __future__ import annotations

import pytest

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
)
from roost.runtime.protocol import InstanceInfo, StartKind

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
