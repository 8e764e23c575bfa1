"""`LocalNodeHost` without a build: the archive's digest check, the counts a node holds a
deployment at, assignments of what was never prepared, the newest map, the bounded events."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from roost.applog import LogBook
from roost.builder import Builder
from roost.cluster.contract import Artifact, Assignment, ClusterMap, NodeIdentity
from roost.cluster.nodehost import (
    IDLE_NEVER,
    LIMIT_EVENTS,
    BuiltPaths,
    LocalNodeHost,
    NodeEvents,
    check_archive,
    held_config,
    with_count,
)
from roost.edge.routes import RouteTable
from roost.errors import DigestMismatch, NotFound, UsageError
from roost.model import AppConfig, AppName, DeploymentId, Mode, ProcessType, ScaleConfig
from roost.registry import Registry
from roost.runtime import LocalRuntime
from roost.runtime.protocol import DeploymentSpec
from roost.runtime.sandbox import SandboxSettings

DEP = DeploymentId("d1234567")
ARCHIVE = b"not really a tarball, but bytes with a digest"
DIGEST = "sha256:" + hashlib.sha256(ARCHIVE).hexdigest()


def artifact(digest: str = DIGEST) -> Artifact:
    return Artifact(AppName("hello"), DEP, digest, AppConfig(name="hello", entrypoint="app:app"))


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[LocalNodeHost, list[ClusterMap]]]:
    logs = LogBook(tmp_path / "logs")
    events = NodeEvents()
    runtime = LocalRuntime(tmp_path, logs, events, sandbox=SandboxSettings(enabled=False))
    shown: list[ClusterMap] = []
    host = LocalNodeHost(
        NodeIdentity("n1", "eu-west", "10.0.0.2:8081", 2**30),
        runtime,
        Builder(tmp_path, ()),
        Registry(tmp_path / "blobs"),
        logs,
        events,
        demand=dict,
        on_map=shown.append,
    )
    try:
        yield host, shown
    finally:
        await runtime.close()


def test_an_archive_that_matches_gives_the_registry_digest_with_or_without_its_prefix() -> None:
    assert check_archive(artifact(), ARCHIVE) == DIGEST
    assert check_archive(artifact(DIGEST.removeprefix("sha256:")), ARCHIVE) == DIGEST


def test_an_archive_that_does_not_match_names_both_digests() -> None:
    with pytest.raises(DigestMismatch) as mismatch:
        check_archive(artifact(), ARCHIVE + b"!")
    received = "sha256:" + hashlib.sha256(ARCHIVE + b"!").hexdigest()
    assert DIGEST in mismatch.value.message and received in mismatch.value.message
    assert mismatch.value.hint


def test_a_malformed_digest_is_refused() -> None:
    with pytest.raises(UsageError, match="not a valid digest"):
        check_archive(artifact("sha256:../../etc"), ARCHIVE)


async def test_prepare_refuses_a_changed_archive_and_keeps_nothing(
    node: tuple[LocalNodeHost, list[ClusterMap]], tmp_path: Path
) -> None:
    host, _ = node
    with pytest.raises(DigestMismatch):
        await host.prepare(artifact(), ARCHIVE[:-1])
    assert not Registry(tmp_path / "blobs").has(DIGEST)
    assert (await host.report()).prepared == frozenset()
    assert not (tmp_path / "deployments").exists()


async def test_an_assignment_of_what_was_not_prepared_is_refused(node: tuple[LocalNodeHost, list[ClusterMap]]) -> None:
    host, _ = node
    with pytest.raises(NotFound, match="not prepared on node n1"):
        await host.assign(Assignment(DEP, 1))
    with pytest.raises(UsageError):
        await host.assign(Assignment(DEP, -1))


async def test_only_a_newer_map_is_kept_and_handed_on(node: tuple[LocalNodeHost, list[ClusterMap]]) -> None:
    host, shown = node
    maps = [ClusterMap(version, RouteTable("localhost"), {}, "10.0.0.1:8080") for version in (2, 1, 2, 3)]
    for view in maps:
        await host.show(view)
    assert [view.version for view in shown] == [2, 3]
    assert host.cluster_map is maps[3]


def test_a_node_holds_a_deployment_at_zero_until_assigned() -> None:
    config = AppConfig(
        mode=Mode.SERVICE,
        scale=ScaleConfig(min=2, max=8, concurrency=7, idle_timeout=30.0),
        processes=(ProcessType("worker", "celery worker", count=3),),
    )
    held = held_config(config)
    assert held.mode is Mode.FUNCTION  # a service keeps one instance of its own accord; a node never does
    assert (held.scale.min, held.scale.max, held.scale.concurrency) == (0, 0, 7)
    assert held.scale.idle_timeout == IDLE_NEVER
    assert [p.count for p in held.processes] == [0]
    spec = with_count(DeploymentSpec(AppName("a"), DEP, Path("/c"), Path("/v"), held), 3)
    assert (spec.config.scale.min, spec.config.scale.max) == (3, 3)
    assert spec.config.scale.idle_timeout == IDLE_NEVER


def test_events_are_kept_until_taken_and_bounded() -> None:
    events = NodeEvents()
    for n in range(LIMIT_EVENTS + 5):
        events(AppName("a"), "instance.crashed", f"crash {n}", {"n": n})
    taken = events.take()
    assert len(taken) == LIMIT_EVENTS
    assert taken[0].message == "crash 5" and taken[-1].data == {"n": LIMIT_EVENTS + 4}
    assert events.take() == ()


async def test_a_prepared_deployment_takes_a_new_env_without_building_again(tmp_path: Path) -> None:
    logs = LogBook(tmp_path / "logs")
    events = NodeEvents()
    runtime = LocalRuntime(tmp_path, logs, events, sandbox=SandboxSettings(enabled=False))
    builds: list[Artifact] = []

    async def built(of: Artifact) -> BuiltPaths:  # the head's own build, as the head's node finds it
        builds.append(of)
        return BuiltPaths(tmp_path / "code", tmp_path / "venv")

    identity = NodeIdentity("head", "eu-west", "10.0.0.1:8081", 2**30)
    registry = Registry(tmp_path / "blobs")
    host = LocalNodeHost(identity, runtime, Builder(tmp_path, ()), registry, logs, events,
                         demand=dict, on_map=lambda _: None, find_build=built)  # fmt: skip
    try:
        assert await host.prepare(artifact(), ARCHIVE) >= 0.0
        changed = dataclasses.replace(artifact(), env={"GREETING": "hi"})
        assert await host.prepare(changed, ARCHIVE) == 0.0
        assert len(builds) == 1  # found (or built) once
        spec = host.prepared(DEP)
        assert spec is not None and spec.env == {"GREETING": "hi"} and spec.code_dir == tmp_path / "code"
    finally:
        await runtime.close()
