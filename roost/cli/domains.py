"""`roost domains`: an app's custom domains and their certificates (add, remove, list)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import httpx

from roost.cli.appdir import resolve_app
from roost.cli.base import Context, json_option, pass_context
from roost.cli.confirm import confirm_destruction, yes_option
from roost.cli.output import console, print_json
from roost.errors import UsageError
from roost.units import format_duration

DOMAIN_ACTIONS = ("add", "remove", "list")
TIMEOUT_ADD = httpx.Timeout(300.0, connect=5.0)  # the CA validates and issues before the answer


@click.command("domains")
@click.argument("words", nargs=-1, metavar="[APP] [add|remove|list] [HOST]")
@click.option(
    "--cert",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="add: this certificate chain (PEM) instead of ACME.",
)
@click.option(
    "--key",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="add: the certificate's private key (PEM).",
)
@click.option("--no-redirect", is_flag=True, help="add: keep answering plain HTTP instead of redirecting it to HTTPS.")
@click.option("--hsts", is_flag=True, help="add: HTTPS answers carry Strict-Transport-Security (one year).")
@yes_option
@json_option
@pass_context
def domains(
    ctx: Context,
    words: tuple[str, ...],
    cert: Path | None,
    key: Path | None,
    no_redirect: bool,
    hsts: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Route a custom HOST to APP, stop routing it, or list APP's hosts with their certificates (the default).

    With `roost serve --https-port`, `add` obtains a certificate through ACME first (the CA
    checks HOST over HTTP, so its DNS must point here) and answers once it is issued or
    refused; --cert/--key supply one instead. `remove` asks first on a terminal and,
    elsewhere (scripts, CI), refuses without --yes."""
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
    if action == "list":
        _list(ctx, app, as_json)
        return
    if not host:
        raise UsageError(
            f"`roost domains {app} {action}` needs a HOST", hint=f"roost domains {app} {action} example.com"
        )
    if action == "add":
        _add(ctx, app, host, cert, key, redirect=not no_redirect, hsts=hsts, as_json=as_json)
    else:
        confirm_destruction(f"stop routing {host} to '{app}'", yes, f"roost domains {app} remove {host}")
        ctx.client().request("DELETE", f"/v1/apps/{app}/domains/{host}")
        console.print(f"{host} no longer routes to [bold]{app}[/]")


def _add(
    ctx: Context, app: str, host: str, cert: Path | None, key: Path | None, *, redirect: bool, hsts: bool, as_json: bool
) -> None:
    if (cert is None) != (key is None):
        raise UsageError("--cert and --key go together", hint=f"roost domains {app} add {host} --cert FILE --key FILE")
    body: dict[str, Any] = {"host": host, "redirect": redirect, "hsts": hsts}
    if cert is not None and key is not None:
        body |= {"cert": cert.read_text(), "key": key.read_text()}
    elif not as_json:
        console.print(f"adding {host} (with ACME on, the CA validates it first: this can take a minute)")
    added = ctx.client().request("POST", f"/v1/apps/{app}/domains", json=body, timeout=TIMEOUT_ADD)
    if as_json:
        print_json(added)
    elif added["source"] is None:
        console.print(f"{added['host']} now routes to [bold]{app}[/] (plain HTTP: the daemon has no --https-port)")
    else:
        console.print(f"{added['host']} now routes to [bold]{app}[/] over HTTPS: {describe(added, time.time())}")


def _list(ctx: Context, app: str, as_json: bool) -> None:
    found: list[dict[str, Any]] = ctx.client().request("GET", f"/v1/apps/{app}/domains")
    if as_json:
        print_json(found)
        return
    if not found:
        console.print(f"[dim]{app} has no custom domain (`roost domains {app} add NAME`)[/]")
    now = time.time()
    for domain in found:
        console.print(f"{domain['host']:<40} {describe(domain, now)}")


def describe(domain: dict[str, Any], now: float) -> str:
    """One line on a domain's certificate: its state, until when, and what failed and when it is tried again."""
    state = domain["state"]
    until = f" until {_date(domain['not_after'])}" if domain.get("not_after") else ""
    extras = [] if domain.get("redirect", True) or state == "none" else ["no redirect"]
    if domain.get("hsts"):
        extras.append("HSTS")
    if domain.get("source") == "manual":
        extras.append("supplied")
    note = f" ({', '.join(extras)})" if extras else ""
    if state == "none":
        return "http only"
    if state == "valid":
        return f"valid{until}{note}"
    if state == "failing":
        retry = domain.get("next_attempt")
        when = f"; next try in {format_duration(max(0.0, retry - now))}" if retry else ""
        serving = f"; serving the old certificate{until}" if until else ""
        return f"[red]failing[/]: {domain['last_error']}{serving}{when}"
    return f"{state}{until}{note}"


def _date(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
