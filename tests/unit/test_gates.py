"""roost.toml's gates before traffic: `release`, `release_timeout` and `[check]`, parsed into
`AppConfig` with errors that name the key and what it takes."""

import pytest

from roost.config import build_config, replace_settings, setting_sources, settings_schema, validate
from roost.errors import ConfigError
from roost.model import AppConfig, HealthCheck


def parse(settings: dict[str, object]) -> AppConfig:
    return build_config(validate({"entrypoint": "main:app", **settings}))


def test_no_check_and_no_release_by_default() -> None:
    config = parse({})
    assert config.check is None
    assert config.release is None
    assert config.release_timeout == 300.0


def test_release_and_its_timeout() -> None:
    config = parse({"release": "python manage.py migrate --noinput", "release_timeout": "2m"})
    assert config.release == "python manage.py migrate --noinput"
    assert config.release_timeout == 120.0


def test_a_check_table_with_every_key() -> None:
    config = parse(
        {"check": {"path": "/healthz?deep=1", "status": 204, "interval": "5s", "timeout": "2s", "failures": 2}}
    )
    assert config.check == HealthCheck(path="/healthz?deep=1", status=204, interval=5.0, timeout=2.0, failures=2)


def test_an_empty_check_table_checks_root_for_any_status_below_400() -> None:
    check = parse({"check": {}}).check
    assert check == HealthCheck()
    assert check is not None
    assert check.accepts(200) and check.accepts(302) and check.accepts(399)
    assert not check.accepts(404) and not check.accepts(500)
    assert check.expected() == "an HTTP status below 400"


def test_a_named_status_is_the_only_one_accepted() -> None:
    check = HealthCheck(status=200)
    assert check.accepts(200)
    assert not check.accepts(204)
    assert check.expected() == "HTTP 200"


@pytest.mark.parametrize(
    ("settings", "message", "hint"),
    [
        ({"check": {"path": "healthz"}}, "'check.path' = 'healthz' is not valid", 'starts with "/"'),
        ({"check": {"status": 700}}, "'check.status' = 700 is not valid", "from 100 to 599"),
        ({"check": {"status": True}}, "'check.status' = True is not valid", "from 100 to 599"),
        ({"check": {"failures": 0}}, "'check.failures' = 0 is not valid", "from 1 to 100"),
        ({"check": {"interval": "0s"}}, "'check.interval' = '0s' is not valid", "1s or more"),
        ({"check": {"timeout": "0s"}}, "'check.timeout' = '0s' is not valid", "above 0"),
        ({"check": {"interval": "500ms", "timeout": "100ms"}}, "'check.interval' = '500ms' is not valid", "1s or more"),
        ({"check": {"interval": "5s", "timeout": "6s"}}, "'check.timeout' (6s) is above 'check.interval' (5s)", ""),
        ({"check": {"pth": "/"}}, "unknown key 'check.pth'", "failures, interval, path, status, timeout"),
        ({"check": "/healthz"}, "'check' must be a table", "[check]"),
        ({"release": " "}, "'release' = ' ' is not valid", "a command line"),
        ({"release_timeout": "2h"}, "'release_timeout' = '2h' is not valid", "at most 1h"),
        ({"release_timeout": 0}, "'release_timeout' = 0 is not valid", "above 0"),
    ],
)
def test_bad_settings_name_the_key(settings: dict[str, object], message: str, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(settings)
    assert message in caught.value.message
    assert hint in caught.value.hint


def test_the_settings_survive_the_store_and_roost_scale() -> None:
    config = parse({"release": "./migrate.sh", "release_timeout": 30, "check": {"path": "/up", "status": 200}})
    assert AppConfig.from_dict(config.to_dict()) == config
    scaled = replace_settings(config, {"scale": {"max": 3}}, "roost scale")
    assert (scaled.check, scaled.release, scaled.release_timeout) == (config.check, "./migrate.sh", 30.0)
    assert AppConfig.from_dict(parse({}).to_dict()).check is None


def test_the_admin_api_schema_knows_the_keys() -> None:
    schema = settings_schema()
    assert set(schema["properties"]["check"]["properties"]) == {"path", "status", "interval", "timeout", "failures"}
    assert "release" in schema["properties"]
    assert "release_timeout" in schema["properties"]


def test_roost_info_says_where_release_and_check_came_from() -> None:
    config = parse({"release": "./migrate.sh", "check": {"path": "/up"}})
    recorded = {"release": "roost.toml", "check.path": "roost.toml"}
    sources = setting_sources(config, {}, recorded)
    assert sources["release"] == "roost.toml"
    assert sources["release_timeout"] == "default"
    assert sources["check.path"] == "roost.toml"
    assert sources["check.failures"] == "default"
    assert "release" not in setting_sources(parse({}), {}) and "check.path" not in setting_sources(parse({}), {})
