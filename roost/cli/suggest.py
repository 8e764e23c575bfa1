"""Did you mean: a mistyped app name answered with the nearest real one and the corrected command."""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable, Sequence

from roost.errors import NotFound, RoostError

UNKNOWN_APP = re.compile(r"^no app named '(?P<name>[^']+)'$")


def nearest(name: str, names: Sequence[str]) -> str | None:
    """The real name closest to `name`, when one is close enough to be a typo.

    >>> nearest("flask-helo", ["flask-hello", "fastapi-hello"])
    'flask-hello'
    """
    found = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return found[0] if found else None


def corrected(argv: Sequence[str], wrong: str, right: str) -> str:
    """The command line as typed, with the mistyped app replaced."""
    return shlex.join(["roost", *(right if word == wrong else word for word in argv)])


def with_suggestion(error: RoostError, app_names: Callable[[], list[str]], argv: Sequence[str]) -> RoostError:
    """`error` again, or, for an unknown app with a near namesake, the same error hinting at it."""
    found = UNKNOWN_APP.match(error.message) if isinstance(error, NotFound) else None
    if found is None:
        return error
    wrong = found["name"]
    try:
        right = nearest(wrong, app_names())
    except RoostError:
        return error
    if right is None:
        return error
    return NotFound(error.message, hint=f"did you mean '{right}'? {corrected(argv, wrong, right)}")
