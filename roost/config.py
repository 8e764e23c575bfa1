"""App configuration: `roost.toml` or `[tool.roost]` into a typed `AppConfig`.

Reads files and validates; never talks to the daemon. Every error names the
file, the key and what would be accepted.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from croniter import croniter

from roost.errors import ConfigError
from roost.gates import CHECK_KEYS, RELEASE_KEYS, build_check, check_gate_rules
from roost.gates import SCHEMAS as GATE_SCHEMAS
from roost.model import (
    APP_NAME_MAX_LENGTH,
    APP_NAME_PATTERN,
    APP_NAME_RULE,
    ENV_NAME_PATTERN,
    PROCESS_NAME_PATTERN,
    RELEASE_TIMEOUT_DEFAULT,
    AppConfig,
    CronJob,
    LimitsConfig,
    Mode,
    Network,
    ProcessType,
    ScaleConfig,
    is_valid_app_name,
)
from roost.processes import (
    PROCESS_LIMIT_KEYS,
    PROCFILE,
    build_processes,
    known_only,
    procfile_settings,
    read_procfile,
    validate_processes,
)
from roost.units import (
    DURATION_PATTERN,
    SIZE_PATTERN,
    format_duration,
    format_size,
    human_size,
    parse_duration,
    parse_size,
)

ENTRYPOINT_PATTERN = r"^[\w.]+:[\w.]+$"


def body_too_large(limit: int) -> str:
    """The 413 page's sentence: the limit for people, and the setting that changes it."""
    shown = human_size(limit).replace(".0 ", " ")
    return f"request body larger than the app's limit of {shown} (limits.body = {format_size(limit)} in roost.toml)"


Parser = Callable[[object], Any]
JsonSchema = dict[str, Any]
_SCHEMAS: dict[Parser, JsonSchema] = dict(GATE_SCHEMAS)  # what each parser accepts, as JSON Schema (settings_schema)


def _accepts(schema: JsonSchema) -> Callable[[Parser], Parser]:
    """Record, beside a parser, the JSON Schema of the values it accepts: no looser than the parser."""

    def record(parser: Parser) -> Parser:
        _SCHEMAS[parser] = schema
        return parser

    return record


@_accepts({"type": "string", "pattern": r"[^\s\x1c-\x1f\x85]"})  # a character str.strip() keeps
def _string(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a non-empty string")
    return value


@_accepts({"type": "boolean"})
def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


@_accepts({"type": "integer", "minimum": 0})
def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("a whole number, 0 or more")
    return value


@_accepts({"type": "integer", "minimum": 1})
def _positive_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("a whole number, 1 or more")
    return value


@_accepts({"type": "number", "exclusiveMinimum": 0, "maximum": 1024})
def _cores(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1024:
        raise ValueError("a number of cores above 0, like 0.5 or 2")
    return float(value)


@_accepts({"type": "string", "pattern": APP_NAME_PATTERN, "maxLength": APP_NAME_MAX_LENGTH})
def _app_name(value: object) -> str:
    if not isinstance(value, str) or not is_valid_app_name(value):
        raise ValueError(APP_NAME_RULE)
    return value


@_accepts({"type": "string", "pattern": ENTRYPOINT_PATTERN})
def _entrypoint(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(ENTRYPOINT_PATTERN, value):
        raise ValueError("'module:object', like 'main:app'")
    return value


def _choice(*choices: str) -> Parser:
    def parse(value: object) -> str:
        if value not in choices:
            raise ValueError(" or ".join(repr(c) for c in choices))
        return str(value)

    _SCHEMAS[parse] = {"enum": list(choices)}
    return parse


@_accepts(
    {
        "type": "object",
        "propertyNames": {"pattern": ENV_NAME_PATTERN},
        "additionalProperties": {"type": ["string", "number"]},
    }
)
def _env(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError('a table of NAME = "value"')
    result: dict[str, str] = {}
    for key, item in value.items():
        if not re.fullmatch(ENV_NAME_PATTERN, key):
            raise ValueError(f"variable names of letters, digits and '_' ({key!r} is not one)")
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ValueError(f"string values ({key} is a {type(item).__name__})")
        result[key] = str(item)
    return result


@_accepts({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": SIZE_PATTERN}]})
def _size(value: object) -> int:
    return parse_size(value)


@_accepts({"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}]})
def _duration(value: object) -> float:
    return parse_duration(value)


TOP_KEYS: dict[str, Parser] = {
    "name": _app_name,
    "entrypoint": _entrypoint,
    "command": _string,
    "mode": _choice("service", "function"),
    "preload": _bool,
    "keep": _positive_count,
    "auto_restart": _bool,
    **RELEASE_KEYS,
}
SCALE_KEYS: dict[str, Parser] = {
    "min": _count,
    "max": _positive_count,
    "concurrency": _positive_count,
    "idle_timeout": _duration,
}
LIMIT_KEYS: dict[str, Parser] = {
    "memory": _size,
    "cpu": _cores,
    "timeout": _duration,
    "stream_idle": _duration,
    "stream_max": _duration,
    "body": _size,
    "network": _choice("host", "none"),
    "pids": _positive_count,
    "tmp": _size,
    "cpu_budget": _duration,
}
TABLES: dict[str, dict[str, Parser]] = {"scale": SCALE_KEYS, "limits": LIMIT_KEYS, "check": CHECK_KEYS}
PROCESS_KEYS: dict[str, Parser] = {"command": _string, "count": _count, "ready_after": _duration, "grace": _duration}


def _check_keys(source: str, prefix: str, data: Mapping[str, object], allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"{source}: unknown key '{prefix}{key}'",
                hint=f"accepted keys{' in [' + prefix.rstrip('.') + ']' if prefix else ''}: "
                + ", ".join(sorted(allowed)),
            )


def _parse_table(source: str, prefix: str, data: Mapping[str, object], keys: dict[str, Parser]) -> dict[str, Any]:
    _check_keys(source, prefix, data, set(keys))
    parsed: dict[str, Any] = {}
    for key, value in data.items():
        try:
            parsed[key] = keys[key](value)
        except ValueError as exc:
            raise ConfigError(
                f"{source}: '{prefix}{key}' = {value!r} is not valid",
                hint=f"'{prefix}{key}' takes {exc}",
            ) from exc
    return parsed


CRON_KEYS = {"name", "schedule", "path", "public"}
CRON_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
CRON_NAME_RE = re.compile(CRON_NAME_PATTERN)
CRON_PATH_PATTERN = r"^/[^ ?#\r\n]*$"


def _cron_field(value: str) -> str:
    """One schedule field: `*` or a value or a range, each with an optional step, comma-separated."""
    item = rf"(?:\*|{value}(?:-{value})?)(?:/[1-9][0-9]?)?"
    return rf"{item}(?:,{item})*"


# What the admin API's schema promises croniter takes: numbers in each field's range (croniter
# takes more, like names and 'L'; the schema may be stricter than the parser, never looser).
CRON_SCHEDULE_PATTERN = (
    "^"
    + " ".join(
        _cron_field(value)
        for value in (
            "[0-5]?[0-9]",
            "(?:[01]?[0-9]|2[0-3])",
            "(?:0?[1-9]|[12][0-9]|3[01])",
            "(?:0?[1-9]|1[0-2])",
            "[0-6]",
        )
    )
    + "$"
)
CRON_JOB_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": CRON_NAME_PATTERN},
        "schedule": {"type": "string", "pattern": CRON_SCHEDULE_PATTERN},
        "path": {"type": "string", "pattern": CRON_PATH_PATTERN},
        "public": {"type": "boolean"},
    },
    "required": ["name", "schedule", "path"],
    "additionalProperties": False,
}


def settings_schema() -> JsonSchema:
    """JSON Schema of raw settings (roost.toml as JSON) for the admin API, from the parsers' own
    schemas. What it cannot say stays in the parsers and `_check_rules`: rules across keys
    (min <= max, stream_idle <= stream_max), limits.memory >= 16M and timeouts above 0 when
    written as text, cron names unique."""

    def table(keys: Mapping[str, Parser]) -> JsonSchema:
        properties = {key: _SCHEMAS[parser] for key, parser in keys.items()}
        return {"type": "object", "properties": properties, "additionalProperties": False}

    schema = table(TOP_KEYS)
    schema["not"] = {"required": ["entrypoint", "command"]}  # _check_rules: one or the other
    schema["properties"] |= {name: table(keys) for name, keys in TABLES.items()}
    schema["properties"] |= {"env": _SCHEMAS[_env], "cron": {"type": "array", "items": CRON_JOB_SCHEMA}}
    schema["properties"]["processes"] = _processes_schema()
    return schema


def _processes_schema() -> JsonSchema:
    process_limits = {key: _SCHEMAS[LIMIT_KEYS[key]] for key in PROCESS_LIMIT_KEYS}
    table: JsonSchema = {
        "type": "object",
        "properties": {key: _SCHEMAS[parser] for key, parser in PROCESS_KEYS.items()}
        | {"limits": {"type": "object", "properties": process_limits, "additionalProperties": False}},
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "propertyNames": {"pattern": PROCESS_NAME_PATTERN, "not": {"enum": ["web", "release"]}},
        "additionalProperties": {"anyOf": [_SCHEMAS[_string], table]},
    }


def key_schema(table: str, key: str) -> JsonSchema:
    """What `[table] key` accepts, as JSON Schema (`roost scale`'s fields use it)."""
    return _SCHEMAS[TABLES[table][key]]


def _cron_jobs(source: str, value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ConfigError(f"{source}: 'cron' must be an array of tables", hint="write each job as [[cron]]")
    jobs: list[dict[str, Any]] = []
    for index, job in enumerate(value):
        if not isinstance(job, dict):
            raise ConfigError(f"{source}: cron job {index + 1} is not a table", hint="write each job as [[cron]]")
        label = f"cron job '{job.get('name', index + 1)}'"
        _check_keys(source, "cron.", job, CRON_KEYS)
        missing = sorted({"name", "schedule", "path"} - set(job))
        if missing:
            raise ConfigError(
                f"{source}: {label} has no {', '.join(missing)}", hint="each [[cron]] needs name, schedule and path"
            )
        jobs.append(_cron_job(source, label, job))
    names = [job["name"] for job in jobs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: two cron jobs share a name", hint="give each [[cron]] its own name")
    return jobs


def _cron_job(source: str, label: str, job: Mapping[str, object]) -> dict[str, Any]:
    name, schedule, path, public = job["name"], job["schedule"], job["path"], job.get("public", False)
    if not isinstance(name, str) or not CRON_NAME_RE.fullmatch(name):
        raise ConfigError(f"{source}: {label}: 'name' = {name!r} is not valid", hint="use letters, digits, '-' and '_'")
    if not isinstance(schedule, str) or len(schedule.split()) != 5 or not croniter.is_valid(schedule):
        raise ConfigError(
            f"{source}: {label}: schedule {schedule!r} is not a valid cron expression",
            hint='five fields, minute hour day month weekday, in UTC, e.g. "*/5 * * * *" or "0 3 * * 1"',
        )
    if not isinstance(path, str) or not re.fullmatch(CRON_PATH_PATTERN, path):
        raise ConfigError(f"{source}: {label}: 'path' = {path!r} is not valid", hint='a path like "/tasks/cleanup"')
    if not isinstance(public, bool):
        raise ConfigError(f"{source}: {label}: 'public' must be true or false", hint="public = false keeps it private")
    return {"name": name, "schedule": schedule, "path": path, "public": public}


def validate(data: Mapping[str, object], source: str = "roost.toml") -> dict[str, Any]:
    """Check raw settings and return them parsed, still as a sparse dict.

    Only the keys present come back, so layers (file, CLI) can be merged
    before defaults are applied by `build_config`.
    """
    _check_keys(source, "", data, set(TOP_KEYS) | set(TABLES) | {"env", "cron", "processes"})
    result = _parse_table(source, "", {k: v for k, v in data.items() if k in TOP_KEYS}, TOP_KEYS)
    for table, keys in TABLES.items():
        if table in data:
            value = data[table]
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{table}' must be a table", hint=f"write it as [{table}]")
            result[table] = _parse_table(source, f"{table}.", value, keys)
    if "env" in data:
        try:
            result["env"] = _env(data["env"])
        except ValueError as exc:
            raise ConfigError(f"{source}: [env] is not valid", hint=f"[env] takes {exc}") from exc
    if "cron" in data:
        result["cron"] = _cron_jobs(source, data["cron"])
    if "processes" in data:
        result["processes"] = validate_processes(source, data["processes"], PROCESS_KEYS, LIMIT_KEYS)
    return result


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win, key by key inside tables (and tables inside tables:
    `processes.worker.count` from `roost scale` keeps the worker's command)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge(merged[key], value)
            else:
                merged[key] = value
    return merged


def build_config(settings: Mapping[str, Any], source: str = "roost.toml") -> AppConfig:
    """Apply defaults to validated settings and check the rules across keys."""
    mode = Mode(settings.get("mode", Mode.FUNCTION.value))
    scale_data = dict(settings.get("scale", {}))
    scale_data.setdefault("min", 1 if mode is Mode.SERVICE else 0)
    scale = ScaleConfig(**scale_data)
    limits_data = dict(settings.get("limits", {}))
    limits_data["network"] = Network(limits_data.get("network", Network.HOST.value))
    limits = LimitsConfig(**limits_data)
    config = AppConfig(
        name=settings.get("name"),
        entrypoint=settings.get("entrypoint"),
        command=settings.get("command"),
        mode=mode,
        preload=settings.get("preload", True),
        scale=scale,
        limits=limits,
        env=dict(settings.get("env", {})),
        crons=tuple(CronJob(**job) for job in settings.get("cron", [])),
        keep=settings.get("keep"),
        auto_restart=settings.get("auto_restart", True),
        processes=build_processes(
            source, settings.get("processes", {}), limits, partial(_check_process_limits, source)
        ),
        release=settings.get("release"),
        release_timeout=settings.get("release_timeout", RELEASE_TIMEOUT_DEFAULT),
        check=build_check(settings.get("check")),
    )
    _check_rules(config, source)
    check_gate_rules(config.check, source)
    return config


def _check_process_limits(source: str, limits: LimitsConfig, label: str) -> None:
    if limits.memory < 16 * 1024 * 1024:
        raise ConfigError(
            f"{source}: '{label}.memory' = {format_size(limits.memory)} is too small",
            hint="give at least 16M; Python itself needs about 10M",
        )
    _check_sandbox_limits(limits, f"{source} [{label}]")


def _check_rules(config: AppConfig, source: str) -> None:
    if config.entrypoint and config.command:
        raise ConfigError(
            f"{source}: both 'entrypoint' and 'command' are set",
            hint="keep one: 'entrypoint' for an object Roost serves, 'command' for a server that listens on $PORT",
        )
    if config.scale.min > config.scale.max:
        raise ConfigError(
            f"{source}: 'scale.min' ({config.scale.min}) is above 'scale.max' ({config.scale.max})",
            hint="raise scale.max or lower scale.min",
        )
    if config.mode is Mode.SERVICE and config.scale.min < 1:
        raise ConfigError(
            f"{source}: a service needs 'scale.min' of at least 1",
            hint='set scale.min = 1, or mode = "function" to scale to zero',
        )
    if config.limits.memory < 16 * 1024 * 1024:
        raise ConfigError(
            f"{source}: 'limits.memory' = {format_size(config.limits.memory)} is too small",
            hint="give at least 16M; Python itself needs about 10M",
        )
    _check_time_limits(config.limits, source)
    _check_sandbox_limits(config.limits, source)


def _check_time_limits(limits: LimitsConfig, source: str) -> None:
    """`timeout` bounds the wait for the answer's head; `stream_idle` and `stream_max` its body."""
    examples = {"timeout": '"5s"', "stream_idle": '"60s"', "stream_max": '"1h"'}
    for key, example in examples.items():
        if getattr(limits, key) <= 0:
            raise ConfigError(f"{source}: 'limits.{key}' must be above 0", hint=f"for example {key} = {example}")
    if limits.stream_idle > limits.stream_max:
        raise ConfigError(
            f"{source}: 'limits.stream_idle' ({format_duration(limits.stream_idle)}) is above "
            f"'limits.stream_max' ({format_duration(limits.stream_max)})",
            hint="stream_idle is the longest silence within a stream, stream_max the stream's whole length: "
            "lower stream_idle or raise stream_max",
        )


CPU_WINDOW = 10.0  # limits.cpu_budget counts CPU seconds per this many seconds


def _check_sandbox_limits(limits: LimitsConfig, source: str) -> None:
    if limits.pids < 8:
        raise ConfigError(
            f"{source}: 'limits.pids' = {limits.pids} is too small",
            hint="give at least 8: the runner itself uses a few threads",
        )
    if limits.tmp < 1024 * 1024:
        raise ConfigError(f"{source}: 'limits.tmp' = {format_size(limits.tmp)} is too small", hint="give at least 1M")
    ceiling = limits.cpu * CPU_WINDOW
    if limits.cpu_budget is not None and limits.cpu_budget > ceiling:
        raise ConfigError(
            f"{source}: 'limits.cpu_budget' = {limits.cpu_budget:g}s can never be reached: with cpu = "
            f"{limits.cpu:g} an instance gets at most {ceiling:g} CPU seconds per {CPU_WINDOW:g}s",
            hint=f"lower it to {ceiling:g}s or less, raise limits.cpu, or set cpu_budget = 0 for no budget",
        )


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", hint="fix the syntax at the line named") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}", hint="check the path and its permissions") from exc


def find_settings(app_dir: Path) -> tuple[dict[str, Any], str]:
    """Raw settings from `roost.toml`, else `[tool.roost]` in pyproject.toml.

    Returns the validated sparse settings and the file they came from ("" when
    the app has no settings at all).
    """
    settings, source = _settings_file(app_dir)
    procfile = read_procfile(app_dir)
    if procfile is None:
        return settings, source
    added = validate(procfile_settings(procfile, settings), str(app_dir / PROCFILE))
    return merge(added, settings), source or str(app_dir / PROCFILE)


def _settings_file(app_dir: Path) -> tuple[dict[str, Any], str]:
    roost_toml = app_dir / "roost.toml"
    if roost_toml.is_file():
        return validate(read_toml(roost_toml), str(roost_toml)), str(roost_toml)
    pyproject = app_dir / "pyproject.toml"
    if pyproject.is_file():
        tool = read_toml(pyproject).get("tool", {})
        section = tool.get("roost") if isinstance(tool, dict) else None
        if isinstance(section, dict):
            source = f"{pyproject} [tool.roost]"
            return validate(section, source), source
    return {}, ""


def load_app_config(app_dir: Path, overrides: Mapping[str, Any] | None = None) -> AppConfig:
    """The settings in force for the app in `app_dir`, with CLI overrides on top."""
    settings, source = find_settings(app_dir)
    override_layer = validate(overrides or {}, "command-line flags")
    return build_config(merge(settings, override_layer), source or "roost.toml")


def replace_settings(config: AppConfig, changes: Mapping[str, Any], source: str) -> AppConfig:
    """A copy of `config` with validated `changes` applied (for `roost scale`)."""
    current = config.to_dict()
    current.pop("name", None)
    current["cron"] = current.pop("crons")
    current["processes"] = {p.name: _process_settings(p, config.limits) for p in config.processes}
    if not current["processes"]:
        current.pop("processes")
    if current.get("keep") is None:
        current.pop("keep", None)
    merged = merge(current, validate(changes, source))
    merged["name"] = config.name
    return build_config(merged, source)


def _process_settings(process: ProcessType, limits: LimitsConfig) -> dict[str, Any]:
    """A process type back as settings: its own limits are those that differ from the app's."""
    own = {
        key: getattr(process.limits, key)
        for key in PROCESS_LIMIT_KEYS
        if getattr(process.limits, key) != getattr(limits, key) and getattr(process.limits, key) is not None
    }
    if "network" in own:
        own["network"] = process.limits.network.value
    return {
        "command": process.command,
        "count": process.count,
        "ready_after": process.ready_after,
        "grace": process.grace,
        "limits": own,
    }


def with_overrides(config: AppConfig, overrides: Mapping[str, Any]) -> AppConfig:
    """A deployment's settings with the app's `roost scale` changes on top (counts of process
    types the deployment does not have are left out)."""
    overrides = known_only(overrides, config.processes)
    return replace_settings(config, overrides, "roost scale") if overrides else config


PUSHED = "roost push"
"""The source of a top-level setting the push decided, for deployments that recorded no sources
(pushed before pushes said where each setting came from): roost.toml, a flag or a guess."""


def setting_sources(
    config: AppConfig, overrides: Mapping[str, Any], recorded: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Where each setting in force came from, for mode, entrypoint or command, preload,
    auto_restart, release (when set), scale.*, limits.* and check.* (with a `[check]`).

    `roost scale` overrides win (they apply on top of every deployment); then what the push
    recorded in `recorded` ("roost.toml", "pyproject.toml", "roost push --mode", "guessed by
    roost push"); then, for keys it did not record, a guess from the value: "default" when it
    equals the default, else "roost.toml" (tables) or PUSHED (top-level keys, old deployments).
    """
    recorded = recorded or {}
    defaults = build_config({"mode": config.mode.value})

    def source(key: str, changed: bool, guess: str) -> str:
        return recorded.get(key) or (guess if changed else "default")

    sources: dict[str, str] = {
        "mode": source("mode", config.mode != build_config({}).mode, PUSHED),
        "preload": source("preload", config.preload != defaults.preload, "roost.toml"),
        "auto_restart": source("auto_restart", config.auto_restart != defaults.auto_restart, PUSHED),
    }
    if config.entrypoint or config.command:
        key = "entrypoint" if config.entrypoint else "command"
        sources[key] = source(key, True, PUSHED)
    if config.release:
        sources["release"] = source("release", True, PUSHED)
        sources["release_timeout"] = source(
            "release_timeout", config.release_timeout != defaults.release_timeout, PUSHED
        )
    if config.check is not None:
        sources.update({f"check.{name}": recorded.get(f"check.{name}", "default") for name in CHECK_KEYS})
    for table, current, default in (
        ("scale", config.scale, defaults.scale),
        ("limits", config.limits, defaults.limits),
    ):
        changed = overrides.get(table, {})
        for name in TABLES[table]:
            key = f"{table}.{name}"
            is_changed = getattr(current, name) != getattr(default, name)
            sources[key] = "roost scale" if name in changed else source(key, is_changed, "roost.toml")
    return sources


__all__ = [
    "build_config",
    "find_settings",
    "load_app_config",
    "merge",
    "read_toml",
    "replace_settings",
    "setting_sources",
    "validate",
    "with_overrides",
]
