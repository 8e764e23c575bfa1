"""Units of sizes (bytes: `128M`, powers of 1024) and durations (seconds: `5m`, `1h30m`, `500ms`):
parsing what people write and formatting it back. A leaf: imports nothing of Roost."""

from __future__ import annotations

import re

# The patterns below are also the admin API's schema of the settings (config.settings_schema), so they
# spell out upper and lower case and say [0-9], not \d (which takes any Unicode digit).
SIZE_PATTERN = r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTkmgt]?)([Ii]?[Bb]?)\s*$"
DURATION_PATTERN = r"^\s*(?:[0-9]+(?:\.[0-9]+)?(?:[Mm][Ss]|[SsMmHhDd]))+\s*$"
_SIZE_RE = re.compile(SIZE_PATTERN)
_SIZE_FACTORS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION_FULL_RE = re.compile(DURATION_PATTERN)
_DURATION_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
SIZE_FORMS = "a number of bytes or a size like 512K, 128M, 1G"
DURATION_FORMS = "a number of seconds or a duration like 500ms, 5s, 5m, 1h, 1h30m"


def parse_size(value: object) -> int:
    """`128M` -> 134217728. Units are powers of 1024; a bare number is bytes."""
    if isinstance(value, bool):
        raise ValueError(SIZE_FORMS)
    if isinstance(value, int):
        if value < 0:
            raise ValueError(SIZE_FORMS)
        return value
    if not isinstance(value, str):
        raise ValueError(SIZE_FORMS)
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(SIZE_FORMS)
    number, unit, _ = match.groups()
    return int(float(number) * _SIZE_FACTORS[unit.upper()])


def parse_duration(value: object) -> float:
    """`5m` -> 300.0 seconds; `1h30m` and `500ms` too; a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError(DURATION_FORMS)
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(DURATION_FORMS)
        return float(value)
    if not isinstance(value, str):
        raise ValueError(DURATION_FORMS)
    if _DURATION_FULL_RE.fullmatch(value) is None:
        raise ValueError(DURATION_FORMS)
    text = value.strip().lower()
    total = 0.0
    position = 0
    for match in _DURATION_RE.finditer(text):
        if match.start() != position:
            raise ValueError(DURATION_FORMS)
        total += float(match.group(1)) * _DURATION_FACTORS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError(DURATION_FORMS)
    return total


def format_size(size: int) -> str:
    """134217728 -> '128M': the inverse of `parse_size` for whole units."""
    for unit in ("T", "G", "M", "K"):
        factor = _SIZE_FACTORS[unit]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def human_size(size: float) -> str:
    """1536 -> '1.5 KB': an approximate size for people (format_size is exact, for settings)."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def format_duration(seconds: float) -> str:
    """300.0 -> '5m', 0.5 -> '500ms', 7.5 -> '7.5s': the inverse of `parse_duration` for whole units."""
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    for unit in ("d", "h", "m"):
        factor = _DURATION_FACTORS[unit]
        if seconds >= factor and seconds % factor == 0:
            return f"{int(seconds // factor)}{unit}"
    return f"{seconds:g}s"
