"""The admin API keeps its OpenAPI contract, checked through a real `roost serve` over HTTP with a
token: schemathesis generates requests from /openapi.json (stateless) and no answer may be a 5xx
or differ from the document, nor may a request outside the schema be accepted; plus the
hand-picked cases of issue 19. (Positive data may still meet a 400 for a rule across values,
like weights adding up to 100, which JSON Schema cannot say: that check is not run.)"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Daemon, base_env, running

ST = Path(sys.executable).parent / "st"
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "unsupported_method",
        "allow_header_conformance",
        "negative_data_rejection",
    ]
)
REVOKE = "revoke_token_v1_tokens__name__delete"
# Streams that end only when the client leaves (events, logs with follow=true, the dashboard's
# server-sent events): a schema-driven client waits for their end. test_observe.py,
# test_foundation.py and test_dashboard.py read them as a client does.
ENDLESS = ("stream_events_v1_events_stream_get", "logs_v1_apps__name__logs_get", "stream_ui_stream_get")
MAX_EXAMPLES = 5  # per operation and phase: about a minute for the whole API on a busy machine


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("contract") / "home"
    home.mkdir()
    with running(home) as started:
        yield started


def new_token(daemon: Daemon, purpose: str) -> str:
    """A token made over the Unix socket, under a name no generated request will hit."""
    with daemon.api() as local:
        created = local.post("/v1/tokens", json={"name": f"{purpose}-{secrets.token_hex(12)}"})
    assert created.status_code == 201, created.text
    token: str = created.json()["token"]
    return token


HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def schemathesis(daemon: Daemon, token: str, *selection: str) -> subprocess.CompletedProcess[str]:
    argv = [str(ST), "run", f"{daemon.api_url}/openapi.json", "--header", f"Authorization: Bearer {token}"]
    argv += ["--checks", CHECKS, "--phases", "coverage,fuzzing", "--max-examples", str(MAX_EXAMPLES)]
    argv += ["--workers", "1", "--request-timeout", "30", "--output-truncate", "true", *selection]
    return subprocess.run(
        argv, env=base_env(daemon.home), cwd=daemon.home.parent, capture_output=True, text=True, timeout=600
    )


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(daemon: Daemon) -> None:
    exclude = [arg for op in (REVOKE, *ENDLESS) for arg in ("--exclude-operation-id", op)]
    result = schemathesis(daemon, new_token(daemon, "schemathesis"), *exclude)
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{result.stderr[-2000:]}\n{daemon.output()[-4000:]}"
    with daemon.api() as api:
        paths = api.get("/openapi.json").json()["paths"]
    operations = sum(1 for item in paths.values() for method in item if method in HTTP_METHODS)
    tried = operations - 1 - len(ENDLESS)
    assert f"Operations:       {tried} selected" in result.stdout  # everything but those excluded above was tried


def test_schemathesis_on_token_revocation_with_a_token_of_its_own(daemon: Daemon) -> None:
    result = schemathesis(daemon, new_token(daemon, "revoker"), "--include-operation-id", REVOKE)
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
    assert "Operations:       1 selected" in result.stdout


def test_trace_is_refused_with_the_methods_there_are(daemon: Daemon) -> None:
    with daemon.api() as http:
        refused = http.request("TRACE", "/v1/apps")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "GET, HEAD, POST"
        assert refused.json()["error"] == "method_not_allowed"
        assert http.request("TRACE", "/v1/tokens/ci").headers["allow"] == "DELETE"


def test_head_of_a_blob_says_its_content_type(daemon: Daemon) -> None:
    archive = b"not really a tar.gz, but the registry stores bytes"
    digest = "sha256:" + hashlib.sha256(archive).hexdigest()
    with daemon.api() as http:
        missing = http.head(f"/v1/blobs/{digest}")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/json"
        assert http.put(f"/v1/blobs/{digest}", content=archive).status_code == 201
        stored = http.head(f"/v1/blobs/{digest}")
        assert stored.status_code == 200
        assert stored.headers["content-type"] == "application/octet-stream"


def test_a_name_outside_the_schema_is_refused_by_the_schema_with_its_rule_in_words(daemon: Daemon) -> None:
    with daemon.api() as http:
        refused = http.post("/v1/apps", json={"name": "Bad--Name"})
        assert refused.status_code == 422
        assert "'Bad--Name' is not a valid app name (an app name is" in refused.json()["message"]
        assert http.get("/v1/apps/Bad--Name").status_code == 422
        env = http.post("/v1/apps/some-app/env", json={"values": {"PORT": "1"}})
        assert env.status_code == 422
        assert "PORT is set by Roost itself" in env.json()["message"]


def test_forms_the_schema_allows_are_accepted_by_the_use_cases(daemon: Daemon) -> None:
    """The schema's patterns are no stricter than they must be: mixed case and a final dot in a
    host, a duration in mixed units and case, a variable name starting with '_', 3.0 for an
    integer (JSON Schema's integer), a mode by its name."""
    with daemon.api() as http:
        created = http.post("/v1/apps", json={"name": "contract-app", "settings": {"scale": {"max": 2}}})
        assert created.status_code == 201, created.text
        assert http.post("/v1/apps/contract-app/domains", json={"host": "Contract.Example.COM."}).status_code == 201
        assert [d["host"] for d in http.get("/v1/apps/contract-app/domains").json()] == ["contract.example.com"]
        scaled = http.patch("/v1/apps/contract-app/scale", json={"min": 0, "idle_timeout": "1m30S"})
        assert scaled.status_code == 200, scaled.text
        assert http.post("/v1/apps/contract-app/env", json={"values": {"_X1": "y"}}).status_code == 200
        assert http.patch("/v1/apps/contract-app/scale", json={"max": 3.0}).status_code == 200  # a JSON integer
        assert http.post("/v1/apps", json={"name": "contract-svc", "mode": "service"}).status_code == 201
        assert httpx.codes.is_success(http.delete("/v1/apps/contract-app").status_code)


def test_what_a_longer_schemathesis_run_found_is_refused_by_the_schema(daemon: Daemon) -> None:
    """An event id past SQLite's integers was a 500 (OverflowError); `false` for a duration was
    taken as 0 seconds."""
    with daemon.api() as http:
        assert http.get("/v1/events", params={"after": str(2**63)}).status_code == 422
        assert http.get("/v1/events", params={"after": str(2**63 - 1)}).json() == []
        assert http.post("/v1/apps", json={"name": "found-app"}).status_code == 201
        refused = http.patch("/v1/apps/found-app/scale", json={"idle_timeout": False})
        assert refused.status_code == 422
        assert http.patch("/v1/apps/found-app/scale", json={"min": "1"}).status_code == 422
        assert http.patch("/v1/apps/found-app/scale", json={"max": True}).status_code == 422
        assert http.patch("/v1/apps/found-app/scale", json={"idle_timeout": 60}).status_code == 200
