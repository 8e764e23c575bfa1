"""`roost ui`: a one-time login link to the dashboard, for the Unix socket's owner."""

from __future__ import annotations

import webbrowser

import click

from roost.cli.base import Context, pass_context
from roost.cli.output import err_console


@click.command("ui")
@click.option("--open", "open_browser", is_flag=True, help="Open the link in the default browser too.")
@pass_context
def ui(ctx: Context, open_browser: bool) -> None:
    """Print a one-time link that logs a browser in to the dashboard (/ui/ on the admin API).

    Only over the daemon's Unix socket (its owner is an admin): the link works once, within two
    minutes, and the session it opens ends after two idle hours, at logout or when the daemon
    stops. Elsewhere, log in on the page with a user (`roost password`) or a token."""
    link = ctx.client().request("POST", "/ui/links")
    click.echo(link["url"])
    err_console.print("one use, within 2 minutes; anyone with the link can log in until then", style="dim")
    if open_browser and not webbrowser.open(link["url"]):
        err_console.print("no browser to open here: copy the link instead", style="yellow")
