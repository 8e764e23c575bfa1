"""Deployment commands: deployments, promote, rollback, traffic, branch aliases."""

from __future__ import annotations

from typing import Any

import click

from roost.cli.appdir import app_argument, resolve_app
from roost.cli.base import Context, RoostGroup, json_option, pass_context
from roost.cli.output import age, console, print_json, show, table
from roost.cli.push import branch_alias
from roost.errors import UsageError


@click.command("deployments")
@app_argument
@click.option("-q", "--quiet", is_flag=True, help="Print only the ids, newest first (for scripts).")
@json_option
@pass_context
def deployments(ctx: Context, app: str | None, quiet: bool, as_json: bool) -> None:
    """List an app's deployments, newest first; TRAFFIC marks production."""
    app = resolve_app(app)
    found: list[dict[str, Any]] = ctx.client().request("GET", f"/v1/apps/{app}/deployments")
    if as_json:
        print_json(found)
        return
    if quiet:
        # One write: `roost deployments APP -q | head -n 1` must not die of a broken pipe
        # when head exits after the first line (the README's walk-through runs under pipefail).
        if found:
            click.echo("\n".join(d["id"] for d in found))
        return
    rows = table("DEPLOYMENT", "STATUS", "TRAFFIC", "AGE", "BUILD", "MESSAGE", "PREVIEW")
    for d in found:
        build = f"{d['build_seconds']:.1f}s" if d["build_seconds"] is not None else "-"
        traffic = f"{d['weight']}%" if d["weight"] else ""
        rows.add_row(
            d["id"], d["status"], traffic, age(d["created_at"]), build, d["message"] or d["error"], d["preview_url"]
        )
    show(rows)
    if not found:
        console.print("[dim]no deployments yet: `roost push` in the app's folder makes one[/]")


def app_and_name(words: tuple[str, ...], usage: str, example: str) -> tuple[str, str]:
    """`[APP] NAME` of a command: both, or the folder's app and NAME."""
    if not 1 <= len(words) <= 2:
        raise UsageError(f"`{usage}`", hint=f"for example: {example}")
    return (resolve_app(words[0]), words[1]) if len(words) == 2 else (resolve_app(None), words[0])


@click.command("promote")
@click.argument("words", nargs=-1, metavar="[APP] [DEPLOYMENT]")
@click.option("--alias", metavar="BRANCH", help="Promote the deployment this branch alias serves (on merge).")
@json_option
@pass_context
def promote(ctx: Context, words: tuple[str, ...], alias: str | None, as_json: bool) -> None:
    """Send all of APP's production traffic to DEPLOYMENT (or --alias's), without a rebuild."""
    if alias is not None:
        if len(words) > 1:
            raise UsageError("`roost promote [APP] --alias BRANCH` takes no DEPLOYMENT", hint="leave out DEPLOYMENT")
        app = resolve_app(words[0] if words else None)
        body = {"alias": branch_alias(alias, app)}
    else:
        app, deployment = app_and_name(words, "roost promote [APP] DEPLOYMENT", "roost promote flask-hello ab12cd34")
        body = {"deployment": deployment}
    done = ctx.client().request("POST", f"/v1/apps/{app}/promote", json=body)
    if as_json:
        print_json(done)
        return
    console.print(f"promoted [bold]{done['id']}[/]: {done['url']}")


@click.command("rollback")
@app_argument
@click.argument("deployment", required=False)
@pass_context
def rollback(ctx: Context, app: str | None, deployment: str | None) -> None:
    """Send APP's production traffic back to the previous deployment (or DEPLOYMENT), instantly."""
    app = resolve_app(app)
    done = ctx.client().request("POST", f"/v1/apps/{app}/rollback", json={"deployment": deployment})
    console.print(f"rolled back to [bold]{done['id']}[/]: {done['url']}")


def parse_weights(pairs: tuple[str, ...]) -> dict[str, int]:
    weights: dict[str, int] = {}
    for pair in pairs:
        deployment, sep, weight = pair.partition("=")
        if not sep or not weight.strip().rstrip("%").isdigit():
            raise UsageError(
                f"'{pair}' is not DEPLOYMENT=WEIGHT", hint="for example: roost traffic hello ab12cd34=90 ef56gh78=10"
            )
        weights[deployment.strip()] = int(weight.strip().rstrip("%"))
    return weights


@click.command("traffic")
@click.argument("words", nargs=-1, metavar="[APP] [DEPLOYMENT=WEIGHT]")
@json_option
@pass_context
def traffic(ctx: Context, words: tuple[str, ...], as_json: bool) -> None:
    """Split APP's production traffic between deployments by weight; with no weights, show the split."""
    if words and "=" not in words[0]:
        app, weights = resolve_app(words[0]), words[1:]
    else:
        app, weights = resolve_app(None), words
    client = ctx.client()
    if weights:
        result = client.request("PUT", f"/v1/apps/{app}/traffic", json={"weights": parse_weights(weights)})
    else:
        result = client.request("GET", f"/v1/apps/{app}")["traffic"]
    if as_json:
        print_json(result)
        return
    rows = table("DEPLOYMENT", "WEIGHT")
    for entry in result:
        rows.add_row(entry["deployment"], f"{entry['weight']}%")
    show(rows)


@click.group("alias", cls=RoostGroup)
def alias() -> None:
    """Branch aliases: stable preview URLs BRANCH--APP.DOMAIN that `roost push --alias` moves."""


@alias.command("list")
@app_argument
@json_option
@pass_context
def alias_list(ctx: Context, app: str | None, as_json: bool) -> None:
    """List APP's branch aliases: the deployment each serves and its URL."""
    app = resolve_app(app)
    found: list[dict[str, Any]] = ctx.client().request("GET", f"/v1/apps/{app}/aliases")
    if as_json:
        print_json(found)
        return
    rows = table("ALIAS", "DEPLOYMENT", "MOVED", "URL")
    for entry in found:
        rows.add_row(entry["name"], entry["deployment"], age(entry["updated_at"]), entry["url"])
    show(rows)
    if not found:
        console.print(f"[dim]no aliases yet: `roost push --no-promote --alias BRANCH` makes one for {app}[/]")


@alias.command("remove")
@click.argument("words", nargs=-1, metavar="[APP] BRANCH")
@pass_context
def alias_remove(ctx: Context, words: tuple[str, ...]) -> None:
    """Remove a branch alias (its URL answers 404 from now on); its deployment stays."""
    app, branch = app_and_name(words, "roost alias remove [APP] BRANCH", "roost alias remove shop feature/login")
    name = branch_alias(branch, app)
    ctx.client().request("DELETE", f"/v1/apps/{app}/aliases/{name}")
    console.print(f"removed alias [bold]{name}[/] of {app}")
