"""Process types: the `[processes]` table of roost.toml and the `Procfile`, into settings.

A process type is a long-running command of a deployment beside its web instances
(`worker = "celery -A proj worker -l info"`). This module owns their names, keys and the
Procfile's line format; the value parsers (sizes, durations) are handed in by `config`,
which owns them. Reads one file at most; never talks to the daemon.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roost.errors import ConfigError
from roost.model import (
    PROCESS_GRACE,
    PROCESS_NAME_PATTERN,
    PROCESS_NAME_RULE,
    PROCESS_READY_AFTER,
    LimitsConfig,
    Network,
    ProcessType,
)

Parser = Callable[[object], Any]
PROCFILE = "Procfile"
PROCESS_KEYS = ("command", "count", "ready_after", "grace", "limits")
PROCESS_LIMIT_KEYS = ("memory", "cpu", "cpu_budget", "pids", "tmp", "network")
"""The `[limits]` that mean something for a process that takes no requests."""
RESERVED = {
    "web": "the web process is the app's `entrypoint` or `command`",
    "release": "a release step is not a long-running process type",
}
_NAME_RE = re.compile(PROCESS_NAME_PATTERN)
_PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+)\s*:\s*(.*)$")


def check_name(source: str, name: object) -> str:
    """A process type's name, or ConfigError naming the rule."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError(f"{source}: process type {name!r} is not a valid name", hint=f"use {PROCESS_NAME_RULE}")
    if name in RESERVED:
        raise ConfigError(
            f"{source}: '{name}' cannot be a process type in [processes]",
            hint=f"{RESERVED[name]}; give other process types other names (worker, clock, ...)",
        )
    return name


def validate_processes(
    source: str, value: object, keys: Mapping[str, Parser], limit_keys: Mapping[str, Parser]
) -> dict[str, dict[str, Any]]:
    """`[processes]` as sparse settings: `{name: {"command": ..., "limits": {...}}}`.

    Each value is a command line (`worker = "celery ..."`) or a table (`[processes.worker]`
    with `command`, `count`, `ready_after`, `grace` and a `limits` table). `keys` parse the first three,
    `limit_keys` the limits. A table may leave `command` out here (a `roost scale` layer
    sets only `count`); `build_processes` requires it."""
    if not isinstance(value, dict):
        raise ConfigError(
            f"{source}: 'processes' must be a table",
            hint='write it as [processes] with worker = "celery -A proj worker"',
        )
    return {check_name(source, name): _entry(source, name, entry, keys, limit_keys) for name, entry in value.items()}


def _entry(
    source: str, name: str, entry: object, keys: Mapping[str, Parser], limit_keys: Mapping[str, Parser]
) -> dict[str, Any]:
    if isinstance(entry, str):
        entry = {"command": entry}
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{source}: process type '{name}' must be a command line or a table",
            hint=f'write worker = "celery -A proj worker", or [processes.{name}] with command = "..."',
        )
    prefix = f"processes.{name}."
    _check_keys(source, prefix, entry, PROCESS_KEYS)
    parsed = {key: _parse(source, prefix, key, value, keys[key]) for key, value in entry.items() if key != "limits"}
    if "limits" in entry:
        limits = entry["limits"]
        if not isinstance(limits, dict):
            raise ConfigError(f"{source}: '{prefix}limits' must be a table", hint=f"write it as [{prefix}limits]")
        _check_keys(source, f"{prefix}limits.", limits, PROCESS_LIMIT_KEYS)
        parsed["limits"] = {k: _parse(source, f"{prefix}limits.", k, v, limit_keys[k]) for k, v in limits.items()}
    return parsed


def _check_keys(source: str, prefix: str, data: Mapping[str, object], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"{source}: unknown key '{prefix}{key}'",
                hint=f"accepted keys in [{prefix.rstrip('.')}]: {', '.join(sorted(allowed))}",
            )


def _parse(source: str, prefix: str, key: str, value: object, parser: Parser) -> Any:
    try:
        return parser(value)
    except ValueError as exc:
        raise ConfigError(
            f"{source}: '{prefix}{key}' = {value!r} is not valid", hint=f"'{prefix}{key}' takes {exc}"
        ) from exc


def build_processes(
    source: str,
    settings: Mapping[str, Mapping[str, Any]],
    limits: LimitsConfig,
    check_limits: Callable[[LimitsConfig, str], None],
) -> tuple[ProcessType, ...]:
    """Validated `[processes]` settings into `ProcessType`s, each with the app's `limits` under
    its own; `check_limits(limits, label)` applies the rules across limit keys. A process type
    has no CPU budget unless its own limits set one: a worker's job may use its cores for
    minutes, and `limits.cpu` still caps it."""
    found: list[ProcessType] = []
    for name, entry in settings.items():
        if "command" not in entry:
            raise ConfigError(
                f"{source}: process type '{name}' has no command",
                hint=f'give it one: {name} = "..." in [processes], or command = "..." in [processes.{name}]',
            )
        own = dict(entry.get("limits", {}))
        own.setdefault("cpu_budget", 0.0)  # long jobs burn CPU on purpose: no budget unless the type sets one
        if "network" in own:
            own["network"] = Network(own["network"])
        process = ProcessType(
            name=name,
            command=entry["command"],
            limits=dataclasses.replace(limits, **own),
            count=entry.get("count", 1),
            ready_after=entry.get("ready_after", PROCESS_READY_AFTER),
            grace=entry.get("grace", PROCESS_GRACE),
        )
        if process.ready_after <= 0:
            raise ConfigError(
                f"{source}: 'processes.{name}.ready_after' must be above 0", hint='for example ready_after = "3s"'
            )
        check_limits(process.limits, f"processes.{name}.limits")
        found.append(process)
    return tuple(found)


def known_only(overrides: Mapping[str, Any], config_processes: tuple[ProcessType, ...]) -> dict[str, Any]:
    """`roost scale` overrides without counts for process types this deployment does not have
    (a later push dropped them): they stay recorded for a deployment that has them."""
    processes = overrides.get("processes")
    if not isinstance(processes, dict):
        return dict(overrides)
    names = {p.name for p in config_processes}
    kept = {name: value for name, value in processes.items() if name in names}
    return {**{k: v for k, v in overrides.items() if k != "processes"}, **({"processes": kept} if kept else {})}


@dataclass(frozen=True, slots=True)
class Procfile:
    """A Procfile's lines: `web` (the command app's web process), `release` (the deployment's
    release command, roost.toml's `release`), and the other process types."""

    web: str | None = None
    release: str | None = None
    processes: dict[str, str] = field(default_factory=dict)


def parse_procfile(text: str, source: str = PROCFILE) -> Procfile:
    """`name: command` per line; blank lines and `#` comments skipped.

    >>> parse_procfile("web: gunicorn app:app\\nworker: celery -A proj worker\\n").processes
    {'worker': 'celery -A proj worker'}
    """
    web: str | None = None
    release: str | None = None
    processes: dict[str, str] = {}
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PROCFILE_LINE.fullmatch(line)
        if match is None:
            raise ConfigError(
                f"{source}, line {number}: {line!r} is not a 'name: command' line",
                hint="write each process type as name: command, e.g. worker: celery -A proj worker",
            )
        name, command = match.group(1), match.group(2).strip()
        where = f"{source}, line {number}"
        if name in seen:
            raise ConfigError(f"{where}: process type '{name}' appears twice", hint="keep one line per process type")
        seen.add(name)
        if not command:
            raise ConfigError(f"{where}: process type '{name}' has an empty command", hint="write name: command")
        if name == "web":
            web = command
        elif name == "release":
            release = command
        else:
            processes[check_name(where, name)] = command
    return Procfile(web=web, release=release, processes=processes)


def read_procfile(app_dir: Path) -> Procfile | None:
    """The folder's Procfile, or None when it has none."""
    path = app_dir / PROCFILE
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}", hint="a Procfile is UTF-8 text") from exc
    return parse_procfile(text, str(path))


def procfile_settings(procfile: Procfile, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Raw settings the Procfile adds under roost.toml's: its process types when roost.toml
    has no `[processes]`, its `web` line as the `command` when roost.toml names neither
    an entrypoint nor a command, and its `release` line as the `release` when roost.toml has none."""
    added: dict[str, Any] = {}
    if procfile.release and "release" not in settings:
        added["release"] = procfile.release
    if "processes" not in settings and procfile.processes:
        added["processes"] = dict(procfile.processes)
    if procfile.web and "entrypoint" not in settings and "command" not in settings:
        added["command"] = procfile.web
    return added


__all__ = [
    "PROCFILE",
    "Procfile",
    "build_processes",
    "check_name",
    "known_only",
    "parse_procfile",
    "procfile_settings",
    "read_procfile",
    "validate_processes",
]
