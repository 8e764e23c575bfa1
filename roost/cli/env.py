"""`roost env APP set K=V... | unset K... | list [--reveal]`."""

from __future__ import annotations

import click

from roost.cli.base import Context, json_option, pass_context
from roost.cli.output import console, print_json, show, table
from roost.errors import UsageError


def parse_assignments(pairs: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"'{pair}' is not NAME=value", hint="for example: roost env hello set API_KEY=abc123")
        values[name] = value
    return values


@click.command("env")
@click.argument("app")
@click.argument("action", type=click.Choice(["set", "unset", "list"]), default="list")
@click.argument("items", nargs=-1)
@click.option("--reveal", is_flag=True, help="Show secret values in `list`.")
@json_option
@pass_context
def env(ctx: Context, app: str, action: str, items: tuple[str, ...], reveal: bool, as_json: bool) -> None:
    """Secrets and variables: set and unset apply with a rolling restart, no rebuild."""
    client = ctx.client()
    if action == "set":
        names = client.request("POST", f"/v1/apps/{app}/env", json={"values": parse_assignments(items)})
        console.print(f"set {', '.join(names)} on [bold]{app}[/]; instances restart with it")
        return
    if action == "unset":
        if not items:
            raise UsageError("name the variables to unset", hint=f"roost env {app} unset NAME")
        removed = client.request("POST", f"/v1/apps/{app}/env/unset", json={"names": list(items)})
        console.print(f"unset {', '.join(removed) or 'nothing'} on [bold]{app}[/]")
        return
    entries = client.request("GET", f"/v1/apps/{app}/env", params={"reveal": "true" if reveal else "false"})
    if as_json:
        print_json(entries)
        return
    rows = table("NAME", "VALUE", "FROM")
    for entry in entries:
        rows.add_row(entry["name"], entry["value"], entry["source"])
    show(rows)
