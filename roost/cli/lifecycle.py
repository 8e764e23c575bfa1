"""Running commands: start, stop, kill, restart, scale (logs: logs.py, domains: domains.py)."""

from __future__ import annotations

import click

from roost.cli.appdir import app_argument, resolve_app
from roost.cli.base import Context, json_option, pass_context
from roost.cli.output import console, print_json
from roost.units import format_duration


@click.command("start")
@app_argument
@pass_context
def start(ctx: Context, app: str | None) -> None:
    """Start a stopped app again: it serves requests from its production deployment."""
    app = resolve_app(app)
    ctx.client().request("POST", f"/v1/apps/{app}/start")
    console.print(f"started [bold]{app}[/]")


STOP_HELP = (
    "Stop every instance of APP (TERM, a grace, then KILL) and keep the app, its deployments and "
    "settings; it answers 503 until `roost start`. To delete it instead: `roost remove`."
)


def _stop(ctx: Context, app: str | None) -> None:
    app = resolve_app(app)
    ctx.client().request("POST", f"/v1/apps/{app}/stop")
    console.print(f"stopped [bold]{app}[/] (`roost start {app}` brings it back)")


@click.command("stop", help=STOP_HELP)
@app_argument
@pass_context
def stop(ctx: Context, app: str | None) -> None:
    _stop(ctx, app)


@click.command(
    "kill",
    help=f"An alias of `roost stop` (PM2's word for it). {STOP_HELP}",
    short_help="An alias of `roost stop`: stop every instance of APP and keep the app.",
)
@app_argument
@pass_context
def kill(ctx: Context, app: str | None) -> None:
    _stop(ctx, app)


@click.command("restart")
@app_argument
@pass_context
def restart(ctx: Context, app: str | None) -> None:
    """Start new instances of APP, then drain the old ones: a restart without downtime."""
    app = resolve_app(app)
    ctx.client().request("POST", f"/v1/apps/{app}/restart")
    console.print(f"restarted [bold]{app}[/]")


@click.command("scale")
@app_argument
@click.option("--min", "minimum", type=click.IntRange(min=0), help="Instances kept at all times (a service: 1+).")
@click.option("--max", "maximum", type=click.IntRange(min=1), help="Most instances at once.")
@click.option("--concurrency", type=click.IntRange(min=1), help="Requests one instance takes at once.")
@click.option("--idle-timeout", help="A function sleeps after this long without requests, e.g. 5m.")
@json_option
@pass_context
def scale(
    ctx: Context,
    app: str | None,
    minimum: int | None,
    maximum: int | None,
    concurrency: int | None,
    idle_timeout: str | None,
    as_json: bool,
) -> None:
    """Change APP's scale settings (they stay in force across pushes); with no option, show them."""
    app = resolve_app(app)
    changes = {"min": minimum, "max": maximum, "concurrency": concurrency, "idle_timeout": idle_timeout}
    given = {key: value for key, value in changes.items() if value is not None}
    client = ctx.client()
    if given:
        client.request("PATCH", f"/v1/apps/{app}/scale", json=given)
    details = client.request("GET", f"/v1/apps/{app}", params={"events": 0})
    scale_now, sources = details["settings"]["scale"], details["sources"]
    if as_json:
        print_json({"scale": scale_now, "sources": {k: v for k, v in sources.items() if k.startswith("scale.")}})
        return
    for key in ("min", "max", "concurrency", "idle_timeout"):
        value = scale_now[key]
        shown = format_duration(value) if key == "idle_timeout" else str(value)
        console.print(f"  {key:<12} {shown:<8} [dim]({sources[f'scale.{key}']})[/]")
