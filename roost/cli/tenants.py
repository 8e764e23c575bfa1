"""Commands for hosting several owners on one daemon: `roost quota` (caps) and `roost audit` (who did what)."""

from __future__ import annotations

from urllib.parse import quote

import click

from roost.cli.base import Context, RoostGroup, json_option, pass_context
from roost.cli.confirm import confirm_destruction, yes_option
from roost.cli.output import console, print_json, show, table
from roost.cli.output import timestamp as stamp
from roost.errors import UsageError
from roost.quotas import check_pattern
from roost.units import format_size, parse_duration, parse_size


@click.group("quota", cls=RoostGroup)
def quota() -> None:
    """Caps on the instances and memory of an app or a group of apps (set, list, remove).

    A quota names an app or a glob of apps ('shop-*'): the autoscaler never runs more instances,
    nor more memory (the sum of the instances' memory limits), over the apps it covers."""


def _size(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise UsageError(f"--memory {value!r} is not a size", hint=f"--memory takes {exc}") from exc


@quota.command("set")
@click.argument("pattern")
@click.option("--instances", type=click.IntRange(min=1), help="Most instances over the covered apps.")
@click.option("--memory", help="Most memory (sum of the instances' memory limits), e.g. 512M or 2G.")
@json_option
@pass_context
def quota_set(ctx: Context, pattern: str, instances: int | None, memory: str | None, as_json: bool) -> None:
    """Set (or replace) the quota of PATTERN, an app name or a glob such as 'shop-*' (quote it)."""
    check_pattern(pattern)
    if instances is None and memory is None:
        raise UsageError("a quota needs a cap", hint="give --instances N, --memory SIZE, or both")
    body = {"instances": instances, "memory": _size(memory)}
    state = ctx.client().request("PUT", f"/v1/quotas/{quote(pattern, safe='')}", json=body)
    if as_json:
        print_json(state)
        return
    console.print(f'quota [bold]"{pattern}"[/] set: {state["usage"]}', highlight=False)


@quota.command("list")
@json_option
@pass_context
def quota_list(ctx: Context, as_json: bool) -> None:
    """List the quotas, the apps each covers and how full it is now."""
    states = ctx.client().request("GET", "/v1/quotas")
    if as_json:
        print_json(states)
        return
    if not states:
        console.print("[dim]no quotas (set one: roost quota set 'shop-*' --instances 4 --memory 2G)[/]")
        return
    rows = table("PATTERN", "INSTANCES", "MEMORY", "USED", "APPS")
    for s in states:
        instances = str(s["instances"]) if s["instances"] is not None else "-"
        memory = format_size(s["memory"]) if s["memory"] is not None else "-"
        rows.add_row(s["pattern"], instances, memory, s["usage"], ", ".join(s["apps"]) or "-")
    show(rows)


@quota.command("remove")
@click.argument("pattern")
@yes_option
@pass_context
def quota_remove(ctx: Context, pattern: str, yes: bool) -> None:
    """Remove the quota of PATTERN: its apps scale on their own settings again.

    It asks first on a terminal and, elsewhere (scripts, CI), refuses without --yes."""
    check_pattern(pattern)
    confirm_destruction(f'remove the quota "{pattern}"', yes, f"roost quota remove '{pattern}'")
    ctx.client().request("DELETE", f"/v1/quotas/{quote(pattern, safe='')}")
    console.print(f'removed quota [bold]"{pattern}"[/]', highlight=False)


@click.command("audit")
@click.option("--app", help="Only calls about this app.")
@click.option("--user", help="Only calls by this user or token.")
@click.option("--since", help="Only calls newer than this, e.g. 10m or 1h.")
@click.option("--action", help="Only this action or HTTP method (POST, PUT, PATCH, DELETE, secret.reveal).")
@click.option("-n", "--last", default=50, show_default=True, type=click.IntRange(1, 10_000), help="How many calls.")
@json_option
@pass_context
def audit(
    ctx: Context,
    app: str | None,
    user: str | None,
    since: str | None,
    action: str | None,
    last: int,
    as_json: bool,
) -> None:
    """Show who changed what on the admin API: user or token, from which address, to which app."""
    params: dict[str, str | int] = {"limit": last}
    for key, value in (("app", app), ("user", user), ("action", action)):
        if value:
            params[key] = value
    if since:
        try:
            params["since"] = str(parse_duration(since))
        except ValueError as exc:
            raise UsageError(f"--since {since!r} is not a duration", hint=f"--since takes {exc}") from exc
    entries = ctx.client().request("GET", "/v1/audit", params=params)
    if as_json:
        print_json(entries)
        return
    if not entries:
        console.print("[dim]no audited calls match[/]")
        return
    rows = table("TIME", "USER", "VIA", "ADDRESS", "APP", "ACTION", "PATH", "STATUS")
    for e in entries:
        rows.add_row(
            stamp(e["at"]),
            e["user"],
            e["kind"],
            e["address"],
            e["app"] or "-",
            e["action"],
            e["path"],
            str(e["status"]),
        )
    show(rows)
