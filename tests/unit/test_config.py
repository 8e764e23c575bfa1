from pathlib import Path

import pytest

from roost.cli.push import setting_origins
from roost.config import (
    PUSHED,
    body_too_large,
    find_settings,
    load_app_config,
    replace_settings,
    setting_sources,
    with_overrides,
)
from roost.errors import ConfigError
from roost.model import Mode, Network


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def test_defaults_are_globes(tmp_path: Path) -> None:
    config = load_app_config(tmp_path)
    assert config.mode is Mode.FUNCTION
    assert config.scale.min == 0
    assert config.limits.memory == 128 * 1024**2
    assert config.limits.timeout == 5.0
    assert (config.limits.stream_idle, config.limits.stream_max) == (60.0, 3600.0)
    assert config.limits.cpu == 0.5
    assert config.limits.body == 10 * 1024**2
    assert config.limits.network is Network.HOST
    assert config.preload is True


def test_full_roost_toml(tmp_path: Path) -> None:
    write(
        tmp_path,
        "roost.toml",
        """
name = "hello"
entrypoint = "main:app"
mode = "service"
preload = false
[scale]
max = 4
concurrency = 8
idle_timeout = "90s"
[limits]
memory = "256M"
cpu = 1
timeout = "2s"
stream_idle = "20s"
stream_max = "10m"
body = "1M"
network = "none"
[env]
GREETING = "hi"
COUNT = 3
""",
    )
    config = load_app_config(tmp_path)
    assert config.name == "hello"
    assert config.entrypoint == "main:app"
    assert config.mode is Mode.SERVICE
    assert config.scale.min == 1  # a service's default
    assert (config.scale.max, config.scale.concurrency, config.scale.idle_timeout) == (4, 8, 90.0)
    assert config.limits.memory == 256 * 1024**2
    assert config.limits.network is Network.NONE
    assert (config.limits.timeout, config.limits.stream_idle, config.limits.stream_max) == (2.0, 20.0, 600.0)
    assert config.env == {"GREETING": "hi", "COUNT": "3"}
    assert config.preload is False


def test_pyproject_tool_roost(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[project]\nname = "x"\n[tool.roost]\nentrypoint = "app:application"\n')
    assert load_app_config(tmp_path).entrypoint == "app:application"


def test_roost_toml_wins_over_pyproject(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[tool.roost]\nentrypoint = "a:b"\n')
    write(tmp_path, "roost.toml", 'entrypoint = "c:d"\n')
    assert load_app_config(tmp_path).entrypoint == "c:d"


def test_overrides_win(tmp_path: Path) -> None:
    write(tmp_path, "roost.toml", 'mode = "service"\n[scale]\nmax = 3\n')
    config = load_app_config(tmp_path, {"mode": "function", "scale": {"min": 0}})
    assert config.mode is Mode.FUNCTION
    assert config.scale.max == 3


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("colour = 1\n", ["unknown key 'colour'", "accepted keys"]),
        ("[scale]\nmaxx = 3\n", ["unknown key 'scale.maxx'", "concurrency"]),
        ('[limits]\nmemory = "lots"\n', ["'limits.memory'", "128M"]),
        ('[limits]\ntimeout = "5 parsecs"\n', ["'limits.timeout'", "500ms"]),
        ('[limits]\nstream_idle = "soon"\n', ["'limits.stream_idle'", "500ms"]),
        ("[limits]\nstream_max = 0\n", ["'limits.stream_max' must be above 0", 'stream_max = "1h"']),
        ("[limits]\ntimeout = 0\n", ["'limits.timeout' must be above 0", 'timeout = "5s"']),
        (
            '[limits]\nstream_idle = "2m"\nstream_max = "1m"\n',
            ["'limits.stream_idle' (2m) is above 'limits.stream_max' (1m)", "lower stream_idle"],
        ),
        ('mode = "daemon"\n', ["'mode'", "'service' or 'function'"]),
        ('[scale]\nmax = "ten"\n', ["'scale.max'", "whole number"]),
        ("[scale]\nmin = 5\nmax = 2\n", ["'scale.min' (5) is above 'scale.max' (2)"]),
        ('mode = "service"\n[scale]\nmin = 0\n', ["a service needs 'scale.min'"]),
        ('entrypoint = "main"\n', ["'entrypoint'", "module:object"]),
        ('entrypoint = "a:b"\ncommand = "x"\n', ["both 'entrypoint' and 'command'"]),
        ('name = "Bad_Name"\n', ["'name'", "lowercase"]),
        ("scale = 3\n", ["'scale' must be a table"]),
        ('[env]\n"1X" = "v"\n', ["[env]"]),
        ("this is not toml\n", ["not valid TOML"]),
        ('[limits]\nmemory = "1M"\n', ["too small"]),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, names: list[str]) -> None:
    write(tmp_path, "roost.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_app_config(tmp_path)
    full = f"{caught.value.message} {caught.value.hint}"
    assert str(tmp_path / "roost.toml") in caught.value.message
    for name in names:
        assert name in full
    assert caught.value.hint


@pytest.mark.parametrize(
    ("limit", "sentence"),
    [
        (10 * 1024**2, "request body larger than the app's limit of 10 MB (limits.body = 10M in roost.toml)"),
        (1536 * 1024, "request body larger than the app's limit of 1.5 MB (limits.body = 1536K in roost.toml)"),
        (2 * 1024**3, "request body larger than the app's limit of 2 GB (limits.body = 2G in roost.toml)"),
    ],
)
def test_the_413_sentence_names_the_limit_and_the_setting(limit: int, sentence: str) -> None:
    assert body_too_large(limit) == sentence


def test_replace_settings_keeps_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "roost.toml", 'entrypoint = "main:app"\n[scale]\nmax = 3\n[limits]\nmemory = "64M"\n')
    config = replace_settings(load_app_config(tmp_path), {"scale": {"max": 7}}, "roost scale")
    assert config.scale.max == 7
    assert config.limits.memory == 64 * 1024**2
    assert config.entrypoint == "main:app"


def test_config_dict_round_trip(tmp_path: Path) -> None:
    write(tmp_path, "roost.toml", 'command = "python server.py"\n[limits]\nnetwork = "none"\n[env]\nA = "1"\n')
    config = load_app_config(tmp_path)
    assert type(config).from_dict(config.to_dict()) == config


def test_setting_sources_use_what_the_push_recorded(tmp_path: Path) -> None:
    write(tmp_path, "roost.toml", 'entrypoint = "main:app"\n[scale]\nmin = 1\nmax = 3\n')
    config = load_app_config(tmp_path, {"mode": "service"})
    recorded = {
        "entrypoint": "roost.toml",
        "mode": "roost push --mode",
        "scale.min": "roost.toml",
        "scale.max": "roost.toml",
    }
    overrides = {"scale": {"max": 4}}
    sources = setting_sources(with_overrides(config, overrides), overrides, recorded)
    assert sources["entrypoint"] == "roost.toml"  # not PUSHED: the record says where it came from
    assert sources["mode"] == "roost push --mode"
    assert sources["scale.min"] == "roost.toml"  # set in the file, though equal to a service's default
    assert sources["scale.max"] == "roost scale"  # applied on top of the deployment's settings
    assert sources["preload"] == sources["auto_restart"] == sources["limits.memory"] == "default"


def test_setting_sources_without_a_record_guess_from_the_values(tmp_path: Path) -> None:
    write(tmp_path, "roost.toml", 'entrypoint = "main:app"\nmode = "service"\n[limits]\nmemory = "64M"\n')
    sources = setting_sources(load_app_config(tmp_path), {}, {})
    assert sources["mode"] == sources["entrypoint"] == PUSHED
    assert sources["limits.memory"] == "roost.toml"
    assert sources["scale.min"] == sources["preload"] == "default"


def test_push_records_pyproject_flags_and_guesses(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[tool.roost]\npreload = false\n[tool.roost.limits]\ntimeout = "30s"\n')
    settings, source = find_settings(tmp_path)
    origins = setting_origins(settings, source, {"auto_restart": False}, {"entrypoint": "main:app"})
    assert origins == {
        "preload": "pyproject.toml",
        "limits.timeout": "pyproject.toml",
        "auto_restart": "roost push --no-auto-restart",
        "entrypoint": "guessed by roost push",
    }
    config = load_app_config(tmp_path, {"auto_restart": False, "entrypoint": "main:app"})
    sources = setting_sources(config, {}, origins)
    assert sources["preload"] == sources["limits.timeout"] == "pyproject.toml"
    assert sources["entrypoint"] == "guessed by roost push"
    assert sources["mode"] == "default"
