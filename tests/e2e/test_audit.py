"""`roost audit` end to end: calls by two tokens over TCP are listed with who made them, how
they logged in and from which address, filtered by app, user, action and time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Daemon, running


@pytest.fixture
def audited(home: Path) -> Iterator[Daemon]:
    with running(home) as daemon:
        yield daemon


def token(daemon: Daemon, name: str) -> str:
    created = daemon.cli("token", "create", name, "--json")
    assert created.returncode == 0, created.stderr
    value: str = json.loads(created.stdout)["token"]
    return value


def audit(daemon: Daemon, *args: str) -> list[dict[str, Any]]:
    result = daemon.cli("audit", *args, "--json")
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def test_calls_by_two_tokens_are_audited_with_their_addresses(audited: Daemon) -> None:
    ci, ops = token(audited, "ci"), token(audited, "ops")
    with audited.api() as local:
        assert local.post("/v1/apps", json={"name": "audited"}).status_code == 201
        assert local.post("/v1/apps", json={"name": "other"}).status_code == 201
    api = audited.api_url

    def call(who: str, method: str, path: str, **kwargs: Any) -> int:
        headers = {"Authorization": f"Bearer {who}"}
        return httpx.request(method, f"{api}{path}", headers=headers, timeout=30, **kwargs).status_code

    assert call(ci, "PATCH", "/v1/apps/audited/scale", json={"max": 3}) == 200
    assert call(ops, "POST", "/v1/apps/audited/env", json={"values": {"GREETING": "hi"}}) == 200
    assert call(ops, "PATCH", "/v1/apps/audited/scale", json={"max": -1}) == 400  # refused, still audited
    assert call(ci, "PATCH", "/v1/apps/other/scale", json={"max": 2}) == 200
    assert call(ci, "GET", "/v1/apps/audited") == 200  # a read changes nothing: not audited

    entries = audit(audited, "--app", "audited")
    assert [(e["user"], e["kind"], e["address"], e["method"], e["path"], e["status"]) for e in entries] == [
        ("ci", "token", "127.0.0.1", "PATCH", "/v1/apps/audited/scale", 200),
        ("ops", "token", "127.0.0.1", "POST", "/v1/apps/audited/env", 200),
        ("ops", "token", "127.0.0.1", "PATCH", "/v1/apps/audited/scale", 400),
    ]
    assert all(e["app"] == "audited" for e in entries)
    assert [e["path"] for e in audit(audited, "--user", "ci")] == ["/v1/apps/audited/scale", "/v1/apps/other/scale"]
    assert [e["user"] for e in audit(audited, "--app", "audited", "--action", "post")] == ["ops"]
    assert len(audit(audited, "--app", "audited", "-n", "1")) == 1
    assert len(audit(audited, "--since", "1h")) >= 6  # the tokens and apps made over the socket too
    sockets = [e for e in audit(audited, "--user", "local") if e["path"] == "/v1/apps"]
    assert [(e["kind"], e["address"]) for e in sockets] == [("socket", "unix-socket")] * 2
    table = audited.cli("audit", "--app", "audited").stdout
    assert "ops" in table and "127.0.0.1" in table and "/v1/apps/audited/env" in table
