"""`roost events [APP] [-f]`: what happened, as it happens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from roost.cli.appdir import app_of_folder, resolve_app
from roost.cli.base import Context, json_option, pass_context
from roost.cli.output import console, print_json
from roost.cli.output import timestamp as stamp


def _show(event: dict[str, Any]) -> None:
    app = f" {event['app']}" if event["app"] else ""
    console.print(f"{stamp(event['at'])}{app} {event['kind']}: {event['message']}", markup=False, highlight=False)


@click.command("events")
@click.argument("app", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events.")
@click.option("-n", "--last", default=20, show_default=True, help="How many past events to show.")
@click.option("--all", "every_app", is_flag=True, help="Every app's events, even inside an app's folder.")
@json_option
@pass_context
def events(ctx: Context, app: str | None, follow: bool, last: int, every_app: bool, as_json: bool) -> None:
    """Show deploys, scale decisions, crashes, OOM kills and rollbacks of APP (the folder's), or of all apps."""
    if app is None and not every_app and app_of_folder(Path.cwd()) is not None:
        app = resolve_app(None)
    client = ctx.client()
    params: dict[str, str | int] = {"last": last}
    if app:
        params["app"] = app
    if not follow:
        found = client.request("GET", "/v1/events", params={"limit": max(last, 1), **({"app": app} if app else {})})
        if as_json:
            print_json(found)
            return
        for event in found:
            _show(event)
        return
    try:
        for line in client.stream_lines("GET", "/v1/events/stream", params=params):
            if not line.strip():
                continue
            if as_json:
                click.echo(line)
            else:
                _show(json.loads(line))
    except KeyboardInterrupt:
        return
