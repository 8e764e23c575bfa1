"""The admin API's schema states the rules the use cases check, from the same constants: a value
the schema accepts is accepted by the code (and, for names, the other way round)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.api import create_api
from roost.config import CRON_SCHEDULE_PATTERN, settings_schema, validate
from roost.control import DIGEST_PATTERN, HOST_MAX_LENGTH, HOST_PATTERN, QUOTA_PATTERN, TOKEN_NAME_PATTERN
from roost.control.access import TOKEN_NAME_RE
from roost.control.core import check_host
from roost.control.env import RESERVED, check_env_name
from roost.errors import UsageError
from roost.model import APP_NAME_MAX_LENGTH, APP_NAME_PATTERN, ENV_NAME_PATTERN, is_valid_app_name
from roost.quotas import check_pattern
from roost.registry import is_valid_digest
from roost.units import DURATION_PATTERN, SIZE_PATTERN, parse_duration, parse_size

OPENAPI = create_api(None).openapi()  # type: ignore[arg-type]  # the document needs no Control


def schema_accepts(pattern: str, text: str, max_length: int | None = None) -> bool:
    """JSON Schema's `pattern` is a search, its `$` the end of the text (Python's `$` also matches
    before a final newline: `\\Z` is the JSON meaning); `maxLength` counts characters."""
    ecma = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
    return re.search(ecma, text) is not None and (max_length is None or len(text) <= max_length)


def parameter(path: str, method: str, name: str) -> dict[str, Any]:
    (found,) = [p for p in OPENAPI["paths"][path][method]["parameters"] if p["name"] == name]
    schema: dict[str, Any] = found["schema"]
    return schema


def body(model: str) -> dict[str, Any]:
    schema: dict[str, Any] = OPENAPI["components"]["schemas"][model]["properties"]
    return schema


def test_the_document_carries_each_rules_own_constant() -> None:
    app = parameter("/v1/apps/{name}", "get", "name")
    assert (app["pattern"], app["maxLength"]) == (APP_NAME_PATTERN, APP_NAME_MAX_LENGTH)
    assert body("AppCreate")["name"]["pattern"] == APP_NAME_PATTERN
    assert parameter("/v1/blobs/{digest}", "head", "digest")["pattern"] == DIGEST_PATTERN
    assert body("PushIn")["digest"]["pattern"] == DIGEST_PATTERN
    assert parameter("/v1/tokens/{name}", "delete", "name")["pattern"] == TOKEN_NAME_PATTERN
    assert body("TokenIn")["name"]["pattern"] == TOKEN_NAME_PATTERN
    host = parameter("/v1/apps/{name}/domains/{host}", "delete", "host")
    assert (host["pattern"], host["maxLength"]) == (HOST_PATTERN, HOST_MAX_LENGTH)
    values = body("EnvSetIn")["values"]
    assert list(values["patternProperties"]) == [ENV_NAME_PATTERN]
    assert values["additionalProperties"] is False
    assert set(values["propertyNames"]["not"]["enum"]) == RESERVED
    weight = body("TrafficIn")["weights"]["additionalProperties"]
    assert (weight["minimum"], weight["maximum"]) == (0, 100)
    assert body("AppCreate")["settings"]["additionalProperties"] is False
    assert body("ScaleChange")["min"]["anyOf"][0]["minimum"] == 0
    assert "429" in OPENAPI["paths"]["/v1/apps"]["get"]["responses"]  # the login throttle's answer
    assert parameter("/v1/quotas/{pattern}", "put", "pattern")["pattern"] == QUOTA_PATTERN
    assert parameter("/v1/audit", "get", "app")["anyOf"][0]["pattern"] == APP_NAME_PATTERN


@given(st.text(alphabet="abz09-*?[]!A/_.", max_size=70))
def test_quota_patterns_the_schema_accepts_are_exactly_the_valid_ones(pattern: str) -> None:
    try:
        check_pattern(pattern)
        valid = True
    except UsageError:
        valid = False
    assert schema_accepts(QUOTA_PATTERN, pattern) == valid


@settings(max_examples=300)
@given(st.text(alphabet="abcz09-A_.", max_size=70))
def test_app_names_the_schema_accepts_are_exactly_the_valid_ones(name: str) -> None:
    assert schema_accepts(APP_NAME_PATTERN, name, APP_NAME_MAX_LENGTH) == is_valid_app_name(name)


@given(st.from_regex(APP_NAME_PATTERN, fullmatch=True).filter(lambda n: len(n) <= APP_NAME_MAX_LENGTH))
def test_generated_app_names_are_valid(name: str) -> None:
    assert is_valid_app_name(name)


@given(st.from_regex(HOST_PATTERN, fullmatch=True).filter(lambda h: len(h) <= HOST_MAX_LENGTH))
def test_hosts_the_schema_accepts_are_accepted(host: str) -> None:
    assert check_host(host) == host.lower().rstrip(".")


@given(st.from_regex(ENV_NAME_PATTERN, fullmatch=True).filter(lambda n: n not in RESERVED))
def test_env_names_the_schema_accepts_are_accepted(name: str) -> None:
    assert check_env_name(name) == name


@given(st.from_regex(TOKEN_NAME_PATTERN, fullmatch=True))
def test_token_names_the_schema_accepts_are_accepted(name: str) -> None:
    assert TOKEN_NAME_RE.fullmatch(name)


@given(st.from_regex(DIGEST_PATTERN, fullmatch=True))
def test_digests_the_schema_accepts_are_accepted(digest: str) -> None:
    assert is_valid_digest(digest)


@given(st.from_regex(CRON_SCHEDULE_PATTERN, fullmatch=True))
def test_schedules_the_schema_accepts_croniter_takes(schedule: str) -> None:
    assert len(schedule.split()) == 5
    assert croniter.is_valid(schedule)


@given(st.from_regex(DURATION_PATTERN, fullmatch=True))
def test_durations_the_schema_accepts_parse(text: str) -> None:
    assert parse_duration(text) >= 0


@given(st.from_regex(SIZE_PATTERN, fullmatch=True))
def test_sizes_the_schema_accepts_parse(text: str) -> None:
    assert parse_size(text) >= 0


@pytest.mark.parametrize("text", ["Bad", "a--b", "a-", "-a", "a" * 64, "a\n"])
def test_names_the_code_refuses_the_schema_refuses(text: str) -> None:
    assert not schema_accepts(APP_NAME_PATTERN, text, APP_NAME_MAX_LENGTH)
    assert not is_valid_app_name(text)


def test_every_settings_key_has_a_schema_and_unknown_keys_are_closed() -> None:
    schema = settings_schema()
    for table in ("", "scale", "limits"):
        part = schema["properties"][table] if table else schema
        assert part["additionalProperties"] is False
        assert all(part["properties"].values())
    assert validate({"scale": {"min": 0, "idle_timeout": "1h30m"}, "limits": {"memory": "128M"}})


def test_an_env_name_with_a_newline_is_refused_as_the_schema_refuses_it() -> None:
    with pytest.raises(UsageError):
        check_env_name("PATH_X\n")
