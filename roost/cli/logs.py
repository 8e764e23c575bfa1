"""`roost logs [APP] [-n N] [-f]`: the app's own output and a line per request the edge answered."""

from __future__ import annotations

import click

from roost.cli.appdir import app_argument, resolve_app
from roost.cli.base import Context, json_option, pass_context
from roost.errors import UsageError
from roost.units import parse_duration


@click.command("logs")
@app_argument
@click.option("-n", "--lines", type=click.IntRange(min=0), help="Only the last N lines (then new ones, with -f).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--since", help="Only lines newer than this, e.g. 10m or 1h.")
@click.option("--deployment", help="Only this deployment's lines.")
@click.option(
    "--requests-only", is_flag=True, help="Only the request lines: time, method, path, status, duration, start."
)
@click.option("--app-only", is_flag=True, help="Only the app's own output (instances, zygotes, builds).")
@click.option("--process", help="Only the output of this process type's instances (e.g. worker).")
@json_option
@pass_context
def logs(
    ctx: Context,
    app: str | None,
    lines: int | None,
    follow: bool,
    since: str | None,
    deployment: str | None,
    requests_only: bool,
    app_only: bool,
    process: str | None,
    as_json: bool,
) -> None:
    """Print APP's log: its instances', zygotes' and builds' output, and a line for every request.

    A request line reads `GET /path 200 3.1ms warm i-ab12cd`: method, path (without the query),
    status, duration, how the answer started (X-Roost-Start: hot, warm or cold; `-` when no
    instance took it) and the instance.
    """
    if requests_only and app_only:
        raise UsageError("--requests-only and --app-only exclude each other", hint="pass one of them, or neither")
    app = resolve_app(app)
    params: dict[str, str] = {"follow": _flag(follow), "json": _flag(as_json)}
    params["kind"] = "requests" if requests_only else "app" if app_only else "all"
    if lines is not None:
        params["lines"] = str(lines)
    if since:
        try:
            params["since"] = str(parse_duration(since))
        except ValueError as exc:
            raise UsageError(f"--since {since!r} is not a duration", hint=f"--since takes {exc}") from exc
    if deployment:
        params["deployment"] = deployment
    if process:
        params["process"] = process
    try:
        for line in ctx.client().stream_lines("GET", f"/v1/apps/{app}/logs", params=params):
            click.echo(line)
    except KeyboardInterrupt:
        return


def _flag(value: bool) -> str:
    return "true" if value else "false"
