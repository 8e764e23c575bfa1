"""The cause a dying process stated: the exception line of its last traceback, else its last line."""

from __future__ import annotations

import doctest

from roost.runtime import cause
from roost.runtime.cause import stated_cause


def test_the_exception_line_wins_over_what_follows_it() -> None:
    lines = [
        "[2026-12-06 02:00:00 +0000] [7] [ERROR] Exception in worker process",
        "Traceback (most recent call last):",
        '  File "/srv/app/main.py", line 4, in <module>',
        "    DATABASE = os.environ['DATABASE_URL']",
        "               ~~~~~~~~~~^^^^^^^^^^^^^^^^",
        "KeyError: 'DATABASE_URL'",
        "[2026-12-06 02:00:00 +0000] [7] [INFO] Worker exiting (pid: 7)",
        "[2026-12-06 02:00:00 +0000] [1] [INFO] Shutting down: Master",
    ]
    assert stated_cause(lines) == "KeyError: 'DATABASE_URL'"


def test_a_chained_traceback_gives_the_last_exception() -> None:
    lines = [
        "Traceback (most recent call last):",
        '  File "a.py", line 1, in <module>',
        "KeyError: 'x'",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "a.py", line 3, in <module>',
        "RuntimeError: config is incomplete",
    ]
    assert stated_cause(lines) == "RuntimeError: config is incomplete"


def test_a_syntax_error_skips_the_caret_lines() -> None:
    lines = [
        "Traceback (most recent call last):",
        '  File "main.py", line 2',
        "    def broken(:",
        "               ^",
        "SyntaxError: invalid syntax",
    ]
    assert stated_cause(lines) == "SyntaxError: invalid syntax"


def test_without_a_traceback_the_last_line_speaks() -> None:
    assert stated_cause(["booting", "Error: No such option: --bnd", "  "]) == "Error: No such option: --bnd"
    assert stated_cause([]) == ""
    assert stated_cause(["", " "]) == ""


def test_a_very_long_line_is_clipped() -> None:
    words = stated_cause(["ValueError: " + "x" * 1000])
    assert words.startswith("ValueError: xxx") and words.endswith("…")
    assert len(words) == cause.LIMIT_CAUSE


def test_the_docstring_examples_hold() -> None:
    result = doctest.testmod(cause, verbose=False, report=True)
    assert result.attempted > 0
    assert result.failed == 0
