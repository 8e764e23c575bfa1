"""Operations commands: gc, cron."""

from __future__ import annotations

import click

from roost.cli.appdir import app_argument, resolve_app
from roost.cli.base import Context, json_option, pass_context
from roost.cli.confirm import confirm_destruction, yes_option
from roost.cli.output import age, console, print_json, show, table, until
from roost.units import human_size


@click.command("gc")
@yes_option
@json_option
@pass_context
def gc(ctx: Context, yes: bool, as_json: bool) -> None:
    """Apply retention now: delete old deployments past each app's `keep`, unused venvs and archives.

    It asks first on a terminal, and refuses without --yes elsewhere.
    """
    confirm_destruction("delete the deployments past each app's `keep`, and unused venvs and archives", yes, "roost gc")
    report = ctx.client().request("POST", "/v1/gc")
    if as_json:
        print_json(report)
        return
    for name in report["pruned"]:
        console.print(f"pruned deployment {name}")
    for kind in ("venvs", "blobs"):
        for item in report[kind]:
            console.print(f"removed {kind[:-1]} {item['name']} ({human_size(item['bytes'])})")
    for item in report["views"]:
        console.print(f"removed the uv cache view of removed app {item['name']} ({human_size(item['bytes'])})")
    console.print(f"freed {human_size(report['freed_bytes'])}")


@click.command("cron")
@app_argument
@json_option
@pass_context
def cron(ctx: Context, app: str | None, as_json: bool) -> None:
    """Show APP's cron jobs: schedule, next run, last run and its result."""
    app = resolve_app(app)
    jobs = ctx.client().request("GET", f"/v1/apps/{app}/cron")
    if as_json:
        print_json(jobs)
        return
    rows = table("JOB", "SCHEDULE (UTC)", "PATH", "NEXT RUN", "LAST RUN", "RESULT")
    for job in jobs:
        if job["last_status"]:
            result = f"HTTP {job['last_status']} in {job['last_seconds'] * 1000:.0f}ms"
        else:
            result = job["last_error"] or "-"
        if job["running"]:
            result = "running" if result == "-" else f"{result}, running again"
        nxt = f"in {until(job['next_run'])}"
        rows.add_row(
            job["name"],
            job["schedule"],
            job["path"] + ("" if job["public"] else " (private)"),
            nxt,
            f"{age(job['last_run'])} ago" if job["last_run"] else "-",
            result,
        )
    show(rows)
    if not jobs:
        console.print(f"[dim]{app} has no cron jobs: add [[cron]] tables to its roost.toml[/]")
