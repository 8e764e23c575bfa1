"""Tables print whole lines: a URL or a name is never folded across lines, piped or not."""

import io

import pytest
from rich.console import Console

from roost.cli import output

URL = "http://a-rather-long-application-name.localhost:8080/"


@pytest.mark.parametrize("terminal", [False, True])
def test_a_table_wider_than_the_console_keeps_each_row_on_one_line(
    monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    sink = io.StringIO()
    narrow = Console(file=sink, width=40, force_terminal=terminal, color_system=None, highlight=False)
    monkeypatch.setattr(output, "console", narrow)
    rows = output.table("NAME", "STATE", "URL")
    rows.add_row("a-rather-long-application-name", "crash-looping", URL)
    output.show(rows)
    lines = sink.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[1].split() == ["a-rather-long-application-name", "crash-looping", URL]
    assert narrow.width == 40  # the console is left as it was


def test_a_table_that_fits_a_terminal_is_printed_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=sink, width=120, force_terminal=True, color_system=None))
    rows = output.table("NAME", "URL")
    rows.add_row("hello", URL)
    output.show(rows)
    assert sink.getvalue().splitlines()[1].split() == ["hello", URL]
