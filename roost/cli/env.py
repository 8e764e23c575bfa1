"""`roost env [APP] set NAME=VALUE | unset NAME | list [--reveal]`."""

from __future__ import annotations

import click

from roost.cli.appdir import resolve_app
from roost.cli.base import Context, json_option, pass_context
from roost.cli.confirm import confirm_destruction, yes_option
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


ACTIONS = ("set", "unset", "list")


@click.command("env")
@click.argument("words", nargs=-1, metavar="[APP] [set|unset|list] [NAME=VALUE | NAME]")
@click.option("--reveal", is_flag=True, help="Show secret values in `list`.")
@yes_option
@json_option
@pass_context
def env(ctx: Context, words: tuple[str, ...], reveal: bool, yes: bool, as_json: bool) -> None:
    """Set, unset or list APP's secrets and variables; a change applies with a rolling restart, no rebuild.

    `unset` deletes values that cannot be read back: it asks first on a terminal and, elsewhere
    (scripts, CI), refuses without --yes."""
    if words and words[0] not in ACTIONS:
        app, rest = resolve_app(words[0]), words[1:]
    else:
        app, rest = resolve_app(None), words
    action, items = (rest[0], rest[1:]) if rest else ("list", ())
    if action not in ACTIONS:
        raise UsageError(
            f"'{action}' is not set, unset or list", hint=f"for example: roost env {app} set API_KEY=abc123"
        )
    client = ctx.client()
    if action == "set":
        names = client.request("POST", f"/v1/apps/{app}/env", json={"values": parse_assignments(items)})
        console.print(f"set {', '.join(names)} on [bold]{app}[/]; instances restart with it")
        return
    if action == "unset":
        if not items:
            raise UsageError("name the variables to unset", hint=f"roost env {app} unset NAME")
        names = " ".join(items)
        confirm_destruction(f"delete {names} of '{app}'", yes, f"roost env {app} unset {names}")
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
