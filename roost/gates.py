"""What a deployment must pass before it takes traffic, as roost.toml says it: the `release`
command with its `release_timeout`, and the `[check]` table (the health check). Parsers, their
JSON Schema and the rules across keys; `config.py` composes them into `AppConfig`.

Pure: reads nothing and runs nothing (the runtime runs the release and the checks).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from roost.errors import ConfigError
from roost.model import HealthCheck
from roost.units import DURATION_PATTERN, format_duration, parse_duration

Parser = Callable[[object], Any]
JsonSchema = dict[str, Any]

CHECK_PATH_PATTERN = r"^/[^ #\r\n]*$"
RELEASE_TIMEOUT_MAX = 3600.0  # an hour: longer is a job, not a release step
CHECK_INTERVAL_MIN = 1.0  # the runtime's sweep runs once a second


def _check_path(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(CHECK_PATH_PATTERN, value):
        raise ValueError('a path that starts with "/", like "/healthz" (a query is allowed)')
    return value


def _http_status(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ValueError("an HTTP status code from 100 to 599, like 200")
    return value


def _failures(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise ValueError("a whole number from 1 to 100")
    return value


def _seconds(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError('a duration above 0, like "10s"')
    return seconds


def _release(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError('a command line, like "python manage.py migrate --noinput"')
    return value


_DURATION_SCHEMA: JsonSchema = {
    "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}]
}
RELEASE_KEYS: dict[str, Parser] = {"release": _release, "release_timeout": _seconds}
CHECK_KEYS: dict[str, Parser] = {
    "path": _check_path,
    "status": _http_status,
    "interval": _seconds,
    "timeout": _seconds,
    "failures": _failures,
}
SCHEMAS: dict[Parser, JsonSchema] = {
    _release: {"type": "string", "pattern": r"[^\s\x1c-\x1f\x85]"},
    _seconds: _DURATION_SCHEMA,
    _check_path: {"type": "string", "pattern": CHECK_PATH_PATTERN},
    _http_status: {"type": "integer", "minimum": 100, "maximum": 599},
    _failures: {"type": "integer", "minimum": 1, "maximum": 100},
}
"""What each parser accepts, as JSON Schema: no looser than the parser (config.settings_schema)."""


def build_check(data: Mapping[str, Any] | None) -> HealthCheck | None:
    """The `[check]` in force: None without the table (any answer on `/`, no liveness check)."""
    if data is None:
        return None
    return HealthCheck(**data)


def check_gate_rules(check: HealthCheck | None, release_timeout: float, source: str) -> None:
    """Rules across keys: a check answers within its interval; a release ends within the hour."""
    if release_timeout > RELEASE_TIMEOUT_MAX:
        raise ConfigError(
            f"{source}: 'release_timeout' = {format_duration(release_timeout)} is above the limit of "
            f"{format_duration(RELEASE_TIMEOUT_MAX)}",
            hint="a release step should be short (migrations); run long work as a job of the app instead",
        )
    if check is None:
        return
    if check.interval < CHECK_INTERVAL_MIN:
        raise ConfigError(
            f"{source}: 'check.interval' = {format_duration(check.interval)} is too short",
            hint=f"check at most once a second: interval = {format_duration(CHECK_INTERVAL_MIN)} or more",
        )
    if check.timeout > check.interval:
        raise ConfigError(
            f"{source}: 'check.timeout' ({format_duration(check.timeout)}) is above 'check.interval' "
            f"({format_duration(check.interval)})",
            hint="a check must end before the next one is due: lower check.timeout or raise check.interval",
        )


__all__ = ["CHECK_KEYS", "RELEASE_KEYS", "SCHEMAS", "build_check", "check_gate_rules"]
