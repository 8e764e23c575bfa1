"""Running commands: start, stop, kill, restart, scale, domains (logs: logs.py)."""

from __future__ import annotations

import click

from roost.cli.appdir import app_argument, resolve_app
from roost.cli.base import Context, json_option, pass_context
from roost.cli.confirm import confirm_destruction, yes_option
from roost.cli.output import console, print_json
from roost.errors import UsageError
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
@click.option(
    "--process",
    "processes",
    multiple=True,
    metavar="NAME=COUNT",
    help="How many instances of a process type (from [processes] or the Procfile) run, e.g. worker=3; repeatable.",
)
@json_option
@pass_context
def scale(
    ctx: Context,
    app: str | None,
    minimum: int | None,
    maximum: int | None,
    concurrency: int | None,
    idle_timeout: str | None,
    processes: tuple[str, ...],
    as_json: bool,
) -> None:
    """Change APP's scale settings and process counts (they stay in force across pushes); with
    no option, show them."""
    app = resolve_app(app)
    changes = {"min": minimum, "max": maximum, "concurrency": concurrency, "idle_timeout": idle_timeout}
    given = {key: value for key, value in changes.items() if value is not None}
    counts = _process_counts(processes)
    client = ctx.client()
    if given:
        client.request("PATCH", f"/v1/apps/{app}/scale", json=given)
    if counts:
        client.request("PATCH", f"/v1/apps/{app}/processes", json={"counts": counts})
    details = client.request("GET", f"/v1/apps/{app}", params={"events": 0})
    scale_now, sources = details["settings"]["scale"], details["sources"]
    process_counts = {p["name"]: p["count"] for p in details["settings"].get("processes", [])}
    if as_json:
        scale_sources = {k: v for k, v in sources.items() if k.startswith("scale.")}
        print_json({"scale": scale_now, "sources": scale_sources, "processes": process_counts})
        return
    for key in ("min", "max", "concurrency", "idle_timeout"):
        value = scale_now[key]
        shown = format_duration(value) if key == "idle_timeout" else str(value)
        console.print(f"  {key:<12} {shown:<8} [dim]({sources[f'scale.{key}']})[/]")
    for name, count in process_counts.items():
        console.print(f"  {name:<12} {count:<8} [dim](process type)[/]")


def _process_counts(given: tuple[str, ...]) -> dict[str, int]:
    """`worker=3` options into {"worker": 3}; a UsageError names the one that does not read."""
    counts: dict[str, int] = {}
    for item in given:
        name, sep, count = item.partition("=")
        if not sep or not name or not count.isdigit():
            raise UsageError(f"--process {item!r} is not NAME=COUNT", hint="for example: --process worker=3")
        counts[name] = int(count)
    return counts


DOMAIN_ACTIONS = ("add", "remove", "list")


@click.command("domains")
@click.argument("words", nargs=-1, metavar="[APP] [add|remove|list] [HOST]")
@yes_option
@json_option
@pass_context
def domains(ctx: Context, words: tuple[str, ...], yes: bool, as_json: bool) -> None:
    """Route a custom HOST to APP, stop routing it, or list APP's hosts (the default).

    `remove` asks first on a terminal and, elsewhere (scripts, CI), refuses without --yes."""
    if words and words[0] not in DOMAIN_ACTIONS:
        app, rest = resolve_app(words[0]), words[1:]
    else:
        app, rest = resolve_app(None), words
    if len(rest) > 2 or (rest and rest[0] not in DOMAIN_ACTIONS):
        raise UsageError(
            f"`roost domains {' '.join(words)}` does not read as [APP] add|remove|list [HOST]",
            hint=f"for example: roost domains {app} add hello.example.com",
        )
    action = rest[0] if rest else "list"
    host = rest[1] if len(rest) > 1 else None
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
            confirm_destruction(f"stop routing {host} to '{app}'", yes, f"roost domains {app} remove {host}")
            client.request("DELETE", f"/v1/apps/{app}/domains/{host}")
            console.print(f"{host} no longer routes to [bold]{app}[/]")
        return
    hosts: list[str] = client.request("GET", f"/v1/apps/{app}/domains")
    if as_json:
        print_json(hosts)
    else:
        for name in hosts:
            console.print(name)
