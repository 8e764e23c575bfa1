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
        raise ValueError('a duration above 0, like "5s"')
    return seconds


def _interval(value: object) -> float:
    seconds = parse_duration(value)
    if seconds < CHECK_INTERVAL_MIN:
        raise ValueError(f'a duration of {format_duration(CHECK_INTERVAL_MIN)} or more, like "10s"')
    return seconds


def _release_timeout(value: object) -> float:
    seconds = parse_duration(value)
    if not 0 < seconds <= RELEASE_TIMEOUT_MAX:
        raise ValueError(
            f'a duration above 0 and at most {format_duration(RELEASE_TIMEOUT_MAX)}, like "5m" (a release step '
            "should be short; run long work as a job of the app)"
        )
    return seconds


def _release(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError('a command line, like "python manage.py migrate --noinput"')
    return value


def _duration_schema(**number: float) -> JsonSchema:
    return {"anyOf": [{"type": "number", **number}, {"type": "string", "pattern": DURATION_PATTERN}]}


RELEASE_KEYS: dict[str, Parser] = {"release": _release, "release_timeout": _release_timeout}
CHECK_KEYS: dict[str, Parser] = {
    "path": _check_path,
    "status": _http_status,
    "interval": _interval,
    "timeout": _seconds,
    "failures": _failures,
}
SCHEMAS: dict[Parser, JsonSchema] = {
    _release: {"type": "string", "pattern": r"[^\s\x1c-\x1f\x85]"},
    _seconds: _duration_schema(exclusiveMinimum=0),
    _interval: _duration_schema(minimum=CHECK_INTERVAL_MIN),
    _release_timeout: _duration_schema(exclusiveMinimum=0, maximum=RELEASE_TIMEOUT_MAX),
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


def check_gate_rules(check: HealthCheck | None, source: str) -> None:
    """The rule across keys: a check must end before the next one is due."""
    if check is not None and check.timeout > check.interval:
        raise ConfigError(
            f"{source}: 'check.timeout' ({format_duration(check.timeout)}) is above 'check.interval' "
            f"({format_duration(check.interval)})",
            hint="a check must end before the next one is due: lower check.timeout or raise check.interval",
        )


__all__ = ["CHECK_KEYS", "RELEASE_KEYS", "SCHEMAS", "build_check", "check_gate_rules"]
