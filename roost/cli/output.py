"""How the CLI shows things: Rich tables for people, JSON for scripts, errors in one line."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from roost.errors import RoostError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def table(*columns: str) -> Table:
    result = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        result.add_column(column, overflow="fold")
    return result


def show(renderable: Any) -> None:
    """Print a table in whole lines, never folding a cell: in a terminal narrower than the table
    the terminal wraps the lines (as `docker ps` does), and piped output stays greppable."""
    wide = console.options.update(width=10_000)
    natural = console.measure(renderable, options=wide).maximum
    if console.is_terminal and natural <= console.width:
        console.print(renderable)
        return
    narrow = console.width
    console.width = natural  # print(width=...) is capped at the console's width
    try:
        console.print(renderable)
    finally:
        console.width = narrow


def print_error(error: RoostError) -> None:
    err_console.print(f"[bold red]error:[/] {escape(error.message)}", markup=True, highlight=False)
    if error.hint:
        err_console.print(f"  [dim]hint:[/] {escape(error.hint)}", markup=True, highlight=False)


def age(timestamp: float | None, now: float | None = None) -> str:
    """A short human age: '12s', '5m', '3h', '2d'."""
    if not timestamp:
        return "-"
    seconds = max(0, int((now or time.time()) - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def until(timestamp: float, now: float | None = None) -> str:
    """How long until `timestamp`, as short as `age`."""
    current = now or time.time()
    return age(current - max(0.0, timestamp - current), current)


def timestamp(at: float) -> str:
    """A local time for event lines: '2026-11-22 01:47:17'."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
