"""App commands: create, list, info, remove."""

from __future__ import annotations

import time
from typing import Any

import click

from roost.cli.appdir import app_argument, resolve_app
from roost.cli.base import Context, json_option, pass_context
from roost.cli.confirm import confirm_destruction, yes_option
from roost.cli.isolation import show_isolation
from roost.cli.output import age, console, print_json, show, table
from roost.units import format_duration, format_size, human_size


@click.command("create")
@click.argument("name")
@click.option("--mode", type=click.Choice(["service", "function"]), help="Default: function.")
@json_option
@pass_context
def create(ctx: Context, name: str, mode: str | None, as_json: bool) -> None:
    """Create an empty app (push creates one too)."""
    app = ctx.client().request("POST", "/v1/apps", json={"name": name, "mode": mode})
    if as_json:
        print_json(app)
    else:
        console.print(f"created app [bold]{app['name']}[/] ({app['mode']})")


@click.command("list")
@json_option
@pass_context
def list_apps(ctx: Context, as_json: bool) -> None:
    """List every app: state, instances, production deployment, traffic, memory and URL."""
    apps: list[dict[str, Any]] = ctx.client().request("GET", "/v1/apps")
    if as_json:
        print_json(apps)
        return
    with_processes = any(app.get("processes") for app in apps)
    columns = ("NAME", "MODE", "STATE", "READY", "PRODUCTION", "AGE", "TRAFFIC", "MEMORY", "URL")
    rows = table(*columns, *(("PROCESSES",) if with_processes else ()))
    for app in apps:
        split = app["traffic"]
        processes = (_process_counts(app.get("processes", [])),) if with_processes else ()
        rows.add_row(
            app["name"],
            app["mode"],
            app["state"],
            f"{app['ready']}/{app['instances']}",
            app["production"] or "-",
            age(app["production_created_at"]) if app["production_created_at"] else "-",
            " ".join(f"{t['deployment']}={t['weight']}" for t in split) if len(split) > 1 else "",
            human_size(app["memory"]) if app["memory"] else "-",
            app["url"],
            *processes,
        )
    show(rows)
    if not apps:
        console.print("[dim]no apps yet: `roost push` in an app's folder creates one[/]")
    for app in apps:
        for problem in app.get("certificate_problems", []):
            console.print(f"[red]![/] {app['name']}: {problem} (`roost domains {app['name']} list`)")
    _api_certificate_problem(ctx.client().request("GET", "/v1/api-domain"))


def _api_certificate_problem(cert: dict[str, Any] | None) -> None:
    """Say loudly when the admin API's own certificate (--api-domain) failed to renew or expired."""
    if cert is None or cert["state"] not in ("failing", "expired"):
        return
    what = "expired" if cert["state"] == "expired" else "renewal failing"
    console.print(f"[red]![/] admin API: {cert['host']}: certificate {what}: {cert['last_error'] or 'not renewed'}")


def _process_counts(processes: list[dict[str, Any]]) -> str:
    """ "worker 2/2 clock 1/1": ready of wanted, per process type; crash-looping said."""
    return " ".join(
        f"{p['process']} {p['ready']}/{p['wanted']}" + (" crash-looping" if p["crash_looping"] else "")
        for p in processes
    )


@click.command("info")
@app_argument
@click.option("--events", default=20, show_default=True, help="How many recent events to show.")
@json_option
@pass_context
def info(ctx: Context, app: str | None, events: int, as_json: bool) -> None:
    """Show an app's settings, deployments, instances, the isolation each really got, and events."""
    app = resolve_app(app)
    details = ctx.client().request("GET", f"/v1/apps/{app}", params={"events": events})
    now = time.time()
    for instance in details["instances"]:
        instance["uptime"] = round(max(0.0, now - instance["started_at"]), 3)
    if as_json:
        print_json(details)
        return
    _show_settings(details["app"], details["settings"], details["sources"])
    _show_deployments(details["deployments"])
    _show_processes(details.get("processes", []))
    _show_instances(details["instances"])
    show_isolation(details["instances"], details.get("builds", []), details["deployments"])
    _show_quotas(details.get("quotas", []))
    _show_events(details["events"])


def _setting(value: object, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if key == "status" and value is None:  # check.status
        return "any below 400"
    if key in DURATIONS and isinstance(value, int | float):
        return format_duration(value)
    if key in SIZES and isinstance(value, int):
        return format_size(value)
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


DURATIONS = {"idle_timeout", "timeout", "stream_idle", "stream_max", "cpu_budget", "release_timeout", "interval"}
SIZES = {"memory", "body", "tmp"}


def _show_settings(app: dict[str, Any], settings: dict[str, Any], sources: dict[str, str]) -> None:
    console.print(f"[bold]{app['name']}[/]  mode={settings['mode']}  desired={app['desired']}")
    rows = table("SETTING", "VALUE", "FROM")
    for key in ("mode", "entrypoint", "command", "preload", "auto_restart", "release", "release_timeout"):
        if _is_shown(key, settings, sources):
            rows.add_row(key, _setting(settings.get(key), key), sources.get(key, ""))
    for table_name in ("scale", "limits", "check"):
        for key, value in (settings.get(table_name) or {}).items():
            name = f"{table_name}.{key}"
            rows.add_row(name, _setting(value, key), sources.get(name, ""))
    for process in settings.get("processes", []):
        rows.add_row(f"processes.{process['name']}", process["command"], "")
    show(rows)


def _is_shown(key: str, settings: dict[str, Any], sources: dict[str, str]) -> bool:
    """A top-level setting has a row when it is set or has a source; release_timeout only with a release."""
    if key == "release_timeout":
        return bool(settings.get("release"))
    return settings.get(key) is not None or key in sources


def _show_deployments(deployments: list[dict[str, Any]]) -> None:
    console.print()
    if not deployments:
        console.print("[dim]no deployments yet[/]")
        return
    rows = table("DEPLOYMENT", "STATUS", "TRAFFIC", "AGE", "MESSAGE")
    for d in deployments:
        rows.add_row(d["id"], d["status"], f"{d['weight']}%" if d["weight"] else "", age(d["created_at"]), d["message"])
    show(rows)


def _show_quotas(quotas: list[dict[str, Any]]) -> None:
    """The quotas covering the app and how full each is (`roost quota list` shows them all)."""
    for q in quotas:
        console.print(f'\nquota "{q["pattern"]}": {q["usage"]} (over {", ".join(q["apps"])})', highlight=False)


def _show_instances(instances: list[dict[str, Any]]) -> None:
    console.print()
    if not instances:
        console.print("[dim]no instances (a function starts one on its next request)[/]")
        return
    with_types = any(i.get("process") for i in instances)
    columns = ("INSTANCE", "DEPLOYMENT", "STATE", "PID", "UPTIME", "RESTARTS", "MEMORY", "CPU", "START", "NOTE")
    rows = table(*columns[:1], *(("TYPE",) if with_types else ()), *columns[1:])
    for i in instances:
        rows.add_row(
            i["id"],
            *((i.get("process") or "web",) if with_types else ()),
            i["deployment"],
            i["state"],
            str(i["pid"] or "-"),
            age(i["started_at"]),  # the uptime
            str(i["restarts"]),
            human_size(i["memory"]) if i["memory"] is not None else "-",
            f"{i['cpu']:.0f}%" if i["cpu"] is not None else "-",
            i["start_kind"],
            i["reason"],
        )
    show(rows)


def _show_processes(processes: list[dict[str, Any]]) -> None:
    """Production's process types: ready of wanted, state, restarts and the last failure."""
    if not processes:
        return
    console.print()
    rows = table("PROCESS", "READY", "STATE", "RESTARTS", "LAST FAILURE")
    for p in processes:
        if p["crash_looping"]:
            state = "crash-looping"
        elif p["ready"] >= p["wanted"]:
            state = "running" if p["wanted"] else "scaled to 0"
        else:
            state = "starting"
        rows.add_row(p["process"], f"{p['ready']}/{p['wanted']}", state, str(p["restarts"]), p["last_failure"])
    show(rows)


def _show_events(events: list[dict[str, Any]]) -> None:
    console.print()
    rows = table("AGE", "EVENT", "MESSAGE")
    for e in events:
        rows.add_row(age(e["at"]), e["kind"], e["message"])
    show(rows)


@click.command("remove")
@click.argument("app")
@yes_option
@pass_context
def remove(ctx: Context, app: str, yes: bool) -> None:
    """Delete APP for good: its deployments, instances, logs, variables and domains.

    It asks first on a terminal; elsewhere (scripts, CI) it refuses without --yes. The app is
    always named here, never taken from the folder: a deletion says what it deletes.
    """
    confirm_destruction(f"delete app '{app}' with all its deployments, logs and variables", yes, f"roost remove {app}")
    ctx.client().request("DELETE", f"/v1/apps/{app}")
    console.print(f"removed app [bold]{app}[/]")
