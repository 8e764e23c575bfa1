"""Process types: `[processes]` in roost.toml and the Procfile, through `roost.config`."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.config import build_config, find_settings, merge, validate, with_overrides
from roost.errors import ConfigError
from roost.model import AppConfig
from roost.processes import parse_procfile


def config_of(data: dict[str, object]) -> AppConfig:
    return build_config(validate({"command": "gunicorn app:app", **data}))


def test_a_command_line_is_a_process_type_with_defaults() -> None:
    config = config_of({"processes": {"worker": "celery -A proj worker -l info", "clock": "python scheduler.py"}})
    assert [(p.name, p.command, p.count, p.ready_after) for p in config.processes] == [
        ("worker", "celery -A proj worker -l info", 1, 3.0),
        ("clock", "python scheduler.py", 1, 3.0),
    ]
    worker = config.process("worker")
    assert worker is not None
    assert worker.limits.memory == config.limits.memory
    assert worker.limits.cpu_budget == 0  # long jobs: no CPU budget unless the type sets one


def test_a_table_overrides_limits_count_and_readiness() -> None:
    config = config_of(
        {
            "limits": {"memory": "256M", "cpu": 1},
            "processes": {
                "worker": {
                    "command": "rq worker",
                    "count": 2,
                    "ready_after": "1s",
                    "grace": "2m",
                    "limits": {"memory": "512M", "cpu_budget": "5s"},
                }
            },
        }
    )
    (worker,) = config.processes
    assert (worker.count, worker.ready_after, worker.grace) == (2, 1.0, 120.0)
    assert (worker.limits.memory, worker.limits.cpu, worker.limits.cpu_budget) == (512 * 1024 * 1024, 1.0, 5.0)


@pytest.mark.parametrize(
    ("processes", "message", "hint"),
    [
        ({"web": "gunicorn app:app"}, "'web' cannot be a process type", "entrypoint"),
        ({"release": "python manage.py migrate"}, "'release' cannot be a process type", "release"),
        ({"Worker": "x"}, "process type 'Worker' is not a valid name", "lowercase"),
        ({"worker": ""}, "'processes.worker.command' = '' is not valid", "non-empty string"),
        (
            {"worker": {"commnd": "x"}},
            "unknown key 'processes.worker.commnd'",
            "command, count, grace, limits, ready_after",
        ),
        ({"worker": {"command": "x", "limits": {"timeout": "1s"}}}, "processes.worker.limits.timeout", "memory"),
        ({"worker": {"command": "x", "count": -1}}, "'processes.worker.count' = -1", "0 or more"),
        ({"worker": {"count": 2}}, "process type 'worker' has no command", "command"),
        ({"worker": {"command": "x", "ready_after": 0}}, "ready_after' must be above 0", "3s"),
        ({"worker": {"command": "x", "limits": {"memory": "8M"}}}, "'processes.worker.limits.memory'", "16M"),
        ({"worker": 3}, "process type 'worker' must be a command line or a table", "[processes.worker]"),
    ],
)
def test_bad_process_types_are_config_errors_with_a_hint(processes: object, message: str, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_of({"processes": processes})
    assert message in caught.value.message
    assert hint in caught.value.hint


def test_a_scale_override_changes_only_the_count_and_forgets_unknown_types() -> None:
    config = config_of({"processes": {"worker": {"command": "celery worker", "limits": {"memory": "512M"}}}})
    scaled = with_overrides(config, {"processes": {"worker": {"count": 3}, "gone": {"count": 2}}})
    (worker,) = scaled.processes
    assert (worker.command, worker.count, worker.limits.memory) == ("celery worker", 3, 512 * 1024 * 1024)


def test_process_types_survive_the_store_round_trip() -> None:
    config = config_of({"processes": {"worker": {"command": "celery worker", "limits": {"network": "none"}}}})
    assert AppConfig.from_dict(config.to_dict()) == config


def test_merge_keeps_a_process_command_under_a_count() -> None:
    merged = merge({"processes": {"worker": {"command": "x"}}}, {"processes": {"worker": {"count": 4}}})
    assert merged == {"processes": {"worker": {"command": "x", "count": 4}}}


def test_a_procfile_is_parsed_line_by_line() -> None:
    procfile = parse_procfile(
        "# comment\n\nweb: gunicorn app:app --bind 127.0.0.1:$PORT\nrelease: python manage.py migrate\n"
        "worker:   celery -A proj worker\nclock: python clock.py\n"
    )
    assert procfile.web == "gunicorn app:app --bind 127.0.0.1:$PORT"
    assert procfile.release == "python manage.py migrate"
    assert procfile.processes == {"worker": "celery -A proj worker", "clock": "python clock.py"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("worker celery\n", "line 1: 'worker celery' is not a 'name: command' line"),
        ("worker: a\nworker: b\n", "line 2: process type 'worker' appears twice"),
        ("worker:\n", "line 1: process type 'worker' has an empty command"),
        ("Worker: x\n", "process type 'Worker' is not a valid name"),
    ],
)
def test_a_bad_procfile_line_is_named(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_procfile(text)
    assert message in caught.value.message


def test_a_folder_with_only_a_procfile_gets_its_web_command_and_types(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: python -m http.server $PORT\nworker: python worker.py\n")
    settings, source = find_settings(tmp_path)
    assert source == str(tmp_path / "Procfile")
    config = build_config(settings)
    assert config.command == "python -m http.server $PORT"
    assert [(p.name, p.command) for p in config.processes] == [("worker", "python worker.py")]


def test_roost_toml_wins_over_the_procfile(tmp_path: Path) -> None:
    (tmp_path / "roost.toml").write_text('entrypoint = "app:app"\n[processes]\nclock = "python clock.py"\n')
    (tmp_path / "Procfile").write_text("web: gunicorn app:app\nworker: python worker.py\n")
    config = build_config(find_settings(tmp_path)[0])
    assert (config.entrypoint, config.command) == ("app:app", None)
    assert [p.name for p in config.processes] == ["clock"]


def test_a_procfile_release_line_is_the_release_command_unless_roost_toml_has_one(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: gunicorn app:app\nrelease: python manage.py migrate --noinput\n")
    assert build_config(find_settings(tmp_path)[0]).release == "python manage.py migrate --noinput"
    (tmp_path / "roost.toml").write_text('release = "python migrate.py"\n')
    config = build_config(find_settings(tmp_path)[0])
    assert (config.release, config.command, config.processes) == ("python migrate.py", "gunicorn app:app", ())


def test_the_procfile_adds_types_to_a_roost_toml_without_processes(tmp_path: Path) -> None:
    (tmp_path / "roost.toml").write_text('command = "gunicorn app:app"\n')
    (tmp_path / "Procfile").write_text("web: something else\nworker: python worker.py\n")
    config = build_config(find_settings(tmp_path)[0])
    assert config.command == "gunicorn app:app"
    assert [p.name for p in config.processes] == ["worker"]
