"""Each wire record reads its fields from its model record by name: a field renamed on one side only
must fail here, not fall silently back to a default."""

import dataclasses
import os
import types

import pytest

from roost.api.audit import AuditOut
from roost.api.env import EnvOut
from roost.api.schemas import AppOut, DeploymentOut, EventOut, InstanceOut, QuotaOut, RecordOut, TrafficOut
from roost.control import AuditEntry, Urls
from roost.control.env import EnvEntry
from roost.control.usage import Usage
from roost.model import (
    App,
    AppConfig,
    AppName,
    Deployment,
    DeploymentId,
    DeploymentStatus,
    DesiredState,
    Event,
    InstanceId,
    InstanceState,
    Mode,
    Quota,
    TrafficEntry,
)
from roost.runtime.isolation import describe
from roost.runtime.protocol import InstanceInfo, StartKind
from roost.runtime.sandbox.readback import Vantage, read_isolation

# wire record -> (model record, the fields its `of` passes itself)
PAIRS: list[tuple[type[RecordOut], type, set[str]]] = [
    (AppOut, App, set()),
    (DeploymentOut, Deployment, {"weight", "preview_url", "url"}),
    (TrafficOut, TrafficEntry, set()),
    (EventOut, Event, set()),
    (InstanceOut, InstanceInfo, {"address", "memory", "cpu", "isolation", "isolation_summary"}),
    (AuditOut, AuditEntry, set()),
    (EnvOut, EnvEntry, set()),
    (QuotaOut, Quota, {"used_instances", "used_memory", "usage", "apps"}),
]


class _Pair(RecordOut):
    name: str
    size: int
    note: str = ""


def test_read_takes_a_later_record_over_an_earlier_and_extra_over_both() -> None:
    first = types.SimpleNamespace(name="a", size=1, other=True)
    second = types.SimpleNamespace(size=2)
    assert _Pair.read(first, second) == _Pair(name="a", size=2)
    assert _Pair.read(first, second, size=3, note="n") == _Pair(name="a", size=3, note="n")


@pytest.mark.parametrize(("wire", "record", "passed"), PAIRS, ids=[wire.__name__ for wire, _, _ in PAIRS])
def test_every_wire_field_comes_from_the_record_or_from_of(
    wire: type[RecordOut], record: type, passed: set[str]
) -> None:
    read = {field.name for field in dataclasses.fields(record)}
    assert set(wire.model_fields) - passed <= read
    assert not passed & read


def test_an_instance_shows_its_address_and_usage_and_enum_values() -> None:
    info = InstanceInfo(
        id=InstanceId("i-1"),
        app=AppName("shop"),
        deployment=DeploymentId("d-1"),
        state=InstanceState.READY,
        host="127.0.0.1",
        port=20001,
        pid=4242,
        started_at=5.0,
        start_kind=StartKind.FORK,
        in_flight=2,
        restarts=1,
        reason="",
    )
    shown = InstanceOut.of(info, {4242: Usage(memory=1000, cpu=3.5)})
    assert shown.model_dump() == {
        "id": "i-1",
        "deployment": "d-1",
        "state": "ready",
        "pid": 4242,
        "address": "127.0.0.1:20001",
        "started_at": 5.0,
        "start_kind": "fork",
        "in_flight": 2,
        "restarts": 1,
        "reason": "",
        "process": "",
        "memory": 1000,
        "cpu": 3.5,
        "isolation": None,  # not read back: none given
        "isolation_summary": [],
    }
    assert InstanceOut.of(info, {}).memory is None


def test_a_deployment_with_urls_and_an_app_with_its_settings() -> None:
    config = AppConfig(name=AppName("shop"), entrypoint="app:app", mode=Mode.FUNCTION)
    deployment = Deployment(
        id=DeploymentId("d-1"),
        app=AppName("shop"),
        status=DeploymentStatus.READY,
        digest="sha256:ab",
        message="m",
        created_at=3.0,
        build_seconds=1.5,
        config=config,
        error="",
        code_dir="/c",
        venv_dir="/v",
        sources={},
    )
    shown = DeploymentOut.of(deployment, 50, Urls(domain="localhost", port=8080))
    assert (shown.status, shown.weight, shown.url) == ("ready", 50, "http://shop.localhost:8080/")
    assert shown.preview_url == "http://d-1--shop.localhost:8080/"
    assert DeploymentOut.of(deployment).url == ""
    app = App(AppName("shop"), Mode.FUNCTION, DesiredState.RUNNING, 1.0, 2.0, config, {"scale": {"min": 1}})
    assert AppOut.of(app).model_dump() == {
        "name": "shop",
        "mode": "function",
        "desired": "running",
        "created_at": 1.0,
        "updated_at": 2.0,
        "config": config.to_dict(),
        "overrides": {"scale": {"min": 1}},
    }


def test_an_instance_carries_its_read_back_isolation_and_its_summary() -> None:
    info = InstanceInfo(
        InstanceId("i-2"), AppName("shop"), DeploymentId("d-1"), InstanceState.READY, "127.0.0.1", 20002,
        os.getpid(), 5.0, StartKind.FRESH,
    )  # fmt: skip
    isolation = read_isolation(os.getpid(), Vantage())
    shown = InstanceOut.of(info, {}, isolation)
    assert shown.isolation == isolation and shown.isolation_summary == describe(isolation)
    assert shown.model_dump(mode="json")["isolation"]["identity"]["uid"] == list(isolation.identity.uid)  # type: ignore[union-attr]
