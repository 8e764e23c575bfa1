"""The cause a dying process stated, in one line: the line a person needs after "exited with
status 3". Pure: reads the tail of its output, never the process.

A Python traceback ends with the exception's own line (`KeyError: 'DATABASE_URL'`), which is
what we want even when the process printed more after it (a server's "worker failed to boot").
Anything else: the last line it wrote (`sh: 1: exec: gunicorn: not found`).
"""

from __future__ import annotations

from collections.abc import Sequence

TRACEBACK = "Traceback (most recent call last):"
LIMIT_CAUSE = 300


def stated_cause(lines: Sequence[str]) -> str:
    """The exception line of the last traceback in `lines`, else the last non-empty line; "" if none.

    >>> stated_cause(["Traceback (most recent call last):", '  File "main.py", line 3, in <module>',
    ...             "    url = os.environ['DATABASE_URL']", "KeyError: 'DATABASE_URL'", "[INFO] shutting down"])
    "KeyError: 'DATABASE_URL'"
    >>> stated_cause(["starting", "/bin/sh: 1: exec: nosuch: not found", ""])
    '/bin/sh: 1: exec: nosuch: not found'
    """
    text = [line.rstrip() for line in lines]
    start = _last_traceback(text)
    if start is not None:
        for line in text[start + 1 :]:
            if line and not line[0].isspace():
                return _clip(line.strip())
    for line in reversed(text):
        if line.strip():
            return _clip(line.strip())
    return ""


def _last_traceback(lines: Sequence[str]) -> int | None:
    """The index of the last traceback header (logging prefixes before it are allowed)."""
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].endswith(TRACEBACK):
            return index
    return None


def _clip(line: str) -> str:
    return line if len(line) <= LIMIT_CAUSE else line[: LIMIT_CAUSE - 1] + "…"
