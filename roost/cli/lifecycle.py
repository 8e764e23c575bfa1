"""Running commands: start, stop (kill), restart, scale, logs, domains."""

from __future__ import annotations

import click

from roost.cli.base import Context, json_option, pass_context
from roost.cli.output import console, print_json
from roost.config import format_duration, parse_duration
from roost.errors import UsageError


@click.command("start")
@click.argument("app")
@pass_context
def start(ctx: Context, app: str) -> None:
    """Start a stopped app again."""
    ctx.client().request("POST", f"/v1/apps/{app}/start")
    console.print(f"started [bold]{app}[/]")


@click.command("stop")
@click.argument("app")
@pass_context
def stop(ctx: Context, app: str) -> None:
    """Stop every instance of APP and keep it; it answers 503 until started."""
    ctx.client().request("POST", f"/v1/apps/{app}/stop")
    console.print(f"stopped [bold]{app}[/] (`roost start {app}` brings it back)")


@click.command("restart")
@click.argument("app")
@pass_context
def restart(ctx: Context, app: str) -> None:
    """Start new instances, then drain the old ones."""
    ctx.client().request("POST", f"/v1/apps/{app}/restart")
    console.print(f"restarted [bold]{app}[/]")


@click.command("scale")
@click.argument("app")
@click.option("--min", "minimum", type=click.IntRange(min=0), help="Instances kept at all times (a service: 1+).")
@click.option("--max", "maximum", type=click.IntRange(min=1), help="Most instances at once.")
@click.option("--concurrency", type=click.IntRange(min=1), help="Requests one instance takes at once.")
@click.option("--idle-timeout", help="A function sleeps after this long without requests, e.g. 5m.")
@json_option
@pass_context
def scale(
    ctx: Context,
    app: str,
    minimum: int | None,
    maximum: int | None,
    concurrency: int | None,
    idle_timeout: str | None,
    as_json: bool,
) -> None:
    """Change APP's scale settings (they stay in force across pushes); no option shows them."""
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


@click.command("logs")
@click.argument("app")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--since", help="Only lines newer than this, e.g. 10m or 1h.")
@click.option("--deployment", help="Only this deployment's lines.")
@pass_context
def logs(ctx: Context, app: str, follow: bool, since: str | None, deployment: str | None) -> None:
    """Print the output of APP's instances, zygotes and builds."""
    params: dict[str, str] = {"follow": "true" if follow else "false"}
    if since:
        try:
            params["since"] = str(parse_duration(since))
        except ValueError as exc:
            raise UsageError(f"--since {since!r} is not a duration", hint=f"--since takes {exc}") from exc
    if deployment:
        params["deployment"] = deployment
    try:
        for line in ctx.client().stream_lines("GET", f"/v1/apps/{app}/logs", params=params):
            click.echo(line)
    except KeyboardInterrupt:
        return


@click.command("domains")
@click.argument("app")
@click.argument("action", type=click.Choice(["add", "remove", "list"]), default="list")
@click.argument("host", required=False)
@json_option
@pass_context
def domains(ctx: Context, app: str, action: str, host: str | None, as_json: bool) -> None:
    """Route a custom HOST to APP: roost domains APP add|remove|list HOST."""
    client = ctx.client()
    if action != "list":
        if not host:
            raise UsageError(
                f"`roost domains {app} {action}` needs a HOST", hint=f"roost domains {app} {action} example.com"
            )
        if action == "add":
            client.request("POST", f"/v1/apps/{app}/domains", json={"host": host})
            console.print(f"{host} now routes to [bold]{app}[/]")
        else:
            client.request("DELETE", f"/v1/apps/{app}/domains/{host}")
            console.print(f"{host} no longer routes to [bold]{app}[/]")
        return
    hosts: list[str] = client.request("GET", f"/v1/apps/{app}/domains")
    if as_json:
        print_json(hosts)
    else:
        for name in hosts:
            console.print(name)
