"""Ray's environment (the token's path; `gcs.py` sets it in the daemon's own environment before it
first talks to Ray) never reaches an instance or a build: both get environments built from a list."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.builder.process import build_env
from roost.model import AppConfig, AppName, DeploymentId
from roost.runtime.environ import process_env
from roost.runtime.protocol import DeploymentSpec

RAY = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": "/var/lib/roost/cluster/token", "RAY_ADDRESS": "10.0.0.1:7300"}


def test_instances_and_builds_get_none_of_rays_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in RAY.items():
        monkeypatch.setenv(name, value)
    spec = DeploymentSpec(AppName("a"), DeploymentId("d1234567"), Path("/c"), Path("/v"), AppConfig(), {"X": "1"})
    instance = process_env(spec, "i1", Path("/t"), 8000)
    build = build_env(Path("/cache"))
    assert instance["X"] == "1" and build["UV_CACHE_DIR"] == "/cache"  # the environments are the real ones
    for env in (instance, build):
        assert not [name for name in env if name.startswith("RAY_")], env
        assert not [value for value in env.values() if "cluster/token" in value], env
