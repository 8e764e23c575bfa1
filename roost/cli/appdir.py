"""The app of the folder you stand in: commands that take an APP use it when none is given.

The folder (or the nearest parent) with a `roost.toml` or a `[tool.roost]` table names the
app, the same name `roost push` would give it. The CLI says which app it picked in one dim
line on stderr, so the output itself stays the command's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
from click.shell_completion import CompletionItem

from roost.cli.base import Context
from roost.cli.output import err_console
from roost.cli.push import app_name_for
from roost.config import find_settings
from roost.errors import RoostError, UsageError


@dataclass(frozen=True, slots=True)
class FolderApp:
    """The app a folder holds: its name and the settings file that says so."""

    name: str
    source: str


def app_of_folder(start: Path) -> FolderApp | None:
    """The app of `start` or of its nearest parent holding app settings; None outside any app."""
    for folder in (start, *start.parents):
        settings, source = find_settings(folder)
        if source:
            return FolderApp(app_name_for(folder, settings, None), source)
    return None


def resolve_app(given: str | None, start: Path | None = None) -> str:
    """`given`, else the app of the current folder (said on stderr); UsageError when neither."""
    if given:
        return given
    found = app_of_folder((start or Path.cwd()).resolve())
    command = click.get_current_context(silent=True)
    path = command.command_path if command is not None else "roost COMMAND"
    if found is None:
        raise UsageError(
            f"`{path}` needs an app, and no roost.toml names one in this folder",
            hint=f"name it (`{path} APP`; `roost list` shows them), or cd into the app's folder",
        )
    shown = _relative(Path(found.source.removesuffix(" [tool.roost]")))
    err_console.print(f"[dim]app {found.name} (from {shown})[/]", markup=True, highlight=False)
    return found.name


def _relative(path: Path) -> str:
    try:
        return f"./{path.relative_to(Path.cwd())}"
    except ValueError:
        return str(path)


def complete_app(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion for APP: the daemon's apps (nothing when it cannot be reached)."""
    try:
        client = Context(url=None, token=None, debug=False).client()
        apps = client.request("GET", "/v1/apps")
    except RoostError:
        return []
    return [CompletionItem(app["name"]) for app in apps if str(app["name"]).startswith(incomplete)]


app_argument = click.argument("app", required=False, shell_complete=complete_app)
"""An optional APP argument; the command calls `resolve_app` on it."""
