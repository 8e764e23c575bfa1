"""`roost init`: write a commented roost.toml for an existing folder, saying what it guessed."""

from __future__ import annotations

import re
from pathlib import Path

import click

from roost.cli.output import console
from roost.errors import Conflict
from roost.guess import factory_note, guess

TEMPLATE = """\
# Roost settings for {name}. Every key is optional; `roost check` shows the settings in force.
name = "{name}"
{run}
mode = "function"            # "function": started by requests, sleeps when idle; "service": always on
# preload = true             # fork instances from a warm zygote (false if the app connects at import time)
# release = "python manage.py migrate --noinput"   # once per deployment, before it takes traffic

[scale]
# min = 0                    # a service keeps at least 1
# max = 10
# concurrency = 50           # requests in flight per instance
# idle_timeout = "5m"        # a function sleeps after this long without requests

[limits]
# memory = "128M"
# cpu = 0.5                  # cores
# timeout = "5s"             # per request; longer answers 504
# body = "10M"
# network = "host"           # or "none"

[env]
# GREETING = "hi"            # secrets go through `roost env set`, not here

# [check]                    # a health check instead of "any answer on /"; failing ones are restarted
# path = "/healthz"
# interval = "10s"
"""


@click.command("init")
@click.argument("path", default=".", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--name", help="App name (default: the folder's name).")
@click.option("--force", is_flag=True, help="Overwrite an existing roost.toml.")
def init(path: Path, name: str | None, force: bool) -> None:
    """Write a commented roost.toml for the app in PATH, guessing how to run it."""
    target = path / "roost.toml"
    if target.exists() and not force:
        raise Conflict(f"{target} already exists", hint="edit it, or pass --force to write a new one")
    app = name or _name_for(path)
    found = guess(path)
    if found is None:
        run = '# entrypoint = "main:app"   # could not guess: name your app object, or\n# command = "python server.py"'
        message = "could not guess how to run it: set `entrypoint` or `command` in roost.toml"
    elif found.entrypoint:
        run = f'entrypoint = "{found.entrypoint}"    # {found.framework}: {found.reason}'
        message = f"guessed a {found.framework} app: entrypoint = {found.entrypoint} ({found.reason})"
    else:
        run = f'command = "{found.command}"    # {found.reason}'
        message = f"guessed a command app: command = {found.command} ({found.reason})"
    note = factory_note(path) if found is None or found.framework not in ("Flask", "FastAPI", "Starlette") else None
    target.write_text(TEMPLATE.format(name=app, run=run))
    console.print(f"wrote {target}")
    console.print(message, markup=False, highlight=False)
    if note:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(f"next: `roost push {path}`")


def _name_for(path: Path) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", path.resolve().name.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    return name if name[:1].isalpha() else f"app-{name}".rstrip("-")
