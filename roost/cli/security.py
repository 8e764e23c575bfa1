"""Access commands: password (local file), token (API), login/logout (saved tokens).

Roles and app grants of tokens are chosen here (--role, --app); users' grants in users.py."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from roost.cli import credentials
from roost.cli.base import Context, RoostGroup, json_option, pass_context
from roost.cli.client import Client, resolve_target
from roost.cli.confirm import confirm_destruction, yes_option
from roost.cli.output import age, console, print_json, show, table
from roost.errors import UsageError
from roost.grants import Grants, Role, check_role
from roost.passwords import PasswordFile, check_new_password, check_user_name
from roost.serve_settings import default_home

Command = TypeVar("Command", bound=Callable[..., Any])
ROLE_CHOICE = click.Choice([r.value for r in Role])


def role_options(what: str) -> Callable[[Command], Command]:
    """--role and --app (repeatable), shared by `password` and `token create`."""

    def wrap(command: Command) -> Command:
        command = click.option(
            "--app",
            "apps",
            multiple=True,
            metavar="PATTERN",
            help=f"An app (or glob: 'shop-*') {what} reaches; repeat for more. Needs --role deployer or viewer.",
        )(command)
        return click.option(
            "--role", type=ROLE_CHOICE, help=f"The role of {what}: admin (default), deployer or viewer."
        )(command)

    return wrap


def grants_from(role: str | None, apps: tuple[str, ...]) -> Grants | None:
    """The grants --role/--app ask for; None when neither is given."""
    if role is None and not apps:
        return None
    return Grants.of(check_role(role or "admin"), list(apps))


@click.command("password")
@click.argument("user")
@click.option("--delete", is_flag=True, help="Remove the user.")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from standard input (for scripts).")
@click.option(
    "--home", type=click.Path(path_type=Path), envvar="ROOST_HOME", help="The daemon's home [env ROOST_HOME]."
)
@role_options("the user")
@yes_option
def password(
    user: str, delete: bool, from_stdin: bool, home: Path | None, role: str | None, apps: tuple[str, ...], yes: bool
) -> None:
    """Set (or --delete) USER's password in $ROOST_HOME/passwords (bcrypt, mode 0600).

    A new user is an admin unless --role says otherwise; an existing one keeps its role unless
    --role is given (`roost user grant` adds to it). --delete asks first on a terminal and, elsewhere (scripts, CI),
    refuses without --yes."""
    check_user_name(user)
    grants = grants_from(role, apps)
    store = PasswordFile((home or default_home()) / "passwords")
    if delete:
        confirm_destruction(f"delete the user '{user}'", yes, f"roost password {user} --delete")
        store.delete(user)
        console.print(f"removed user [bold]{user}[/]")
        return
    if from_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = click.prompt("new password", hide_input=True, confirmation_prompt="repeat it")
    check_new_password(secret)
    store.set(user, secret, grants)
    now = store.grants(user)
    console.print(f"password set for [bold]{user}[/] ({now.describe() if now is not None else '?'}) in {store.path}")


@click.group("token", cls=RoostGroup)
def token() -> None:
    """API tokens: create (shown once), list, revoke."""


@token.command("create")
@click.argument("name")
@role_options("the token")
@json_option
@pass_context
def token_create(ctx: Context, name: str, role: str | None, apps: tuple[str, ...], as_json: bool) -> None:
    """Make a token; it is printed once and only its hash is kept.

    It is an admin unless --role deployer or viewer and --app limit it to some apps."""
    grants_from(role, apps)  # refuse a wrong combination before asking the daemon
    body: dict[str, object] = {"name": name, "apps": list(apps), **({"role": role} if role else {})}
    created = ctx.client().request("POST", "/v1/tokens", json=body)
    if as_json:
        print_json(created)
        return
    click.echo(created["token"])
    click.echo(f"token {name} created ({created['access']}): copy it now, it is not shown again", err=True)


@token.command("list")
@json_option
@pass_context
def token_list(ctx: Context, as_json: bool) -> None:
    """List the API tokens: name, what it may do, age, last use (never the tokens themselves)."""
    tokens = ctx.client().request("GET", "/v1/tokens")
    if as_json:
        print_json(tokens)
        return
    rows = table("NAME", "ACCESS", "CREATED", "LAST USED")
    for entry in tokens:
        rows.add_row(entry["name"], entry["access"], age(entry["created_at"]), age(entry["last_used_at"]))
    show(rows)


@token.command("revoke")
@click.argument("name")
@yes_option
@pass_context
def token_revoke(ctx: Context, name: str, yes: bool) -> None:
    """Revoke the token NAME: requests bearing it are refused from now on.

    It asks first on a terminal and, elsewhere (scripts, CI), refuses without --yes."""
    confirm_destruction(f"revoke the token '{name}'", yes, f"roost token revoke {name}")
    ctx.client().request("DELETE", f"/v1/tokens/{name}")
    console.print(f"revoked token [bold]{name}[/]")


@click.command("login")
@click.argument("url", required=False)
@click.option("--user", help="User name (prompted when missing).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_context
def login(ctx: Context, url: str | None, user: str | None, password_stdin: bool) -> None:
    """Log in to a daemon over TCP and save a token for it (0600, under ~/.config/roost).

    The token has the user's role and apps, as they are at each use; deleting the user stops it."""
    target = resolve_target(url or ctx.url)
    if target.socket is not None:
        raise UsageError("the Unix socket needs no login", hint="give the daemon's URL: roost login https://host:7070")
    user = user or click.prompt("user")
    secret = sys.stdin.readline().rstrip("\r\n") if password_stdin else click.prompt("password", hide_input=True)
    client = Client(target, basic=(user, secret), verify=ctx.cacert or True)
    name = f"login-{user}-{platform.node() or 'host'}-{int(time.time())}"
    created = client.request("POST", "/v1/tokens", json={"name": name, "own": True})
    path = credentials.save(target.url, created["token"])
    console.print(f"logged in to {target.url} as [bold]{user}[/]; token {name} saved in {path}")


@click.command("logout")
@click.argument("url", required=False)
@pass_context
def logout(ctx: Context, url: str | None) -> None:
    """Forget the saved token for a daemon URL."""
    target = resolve_target(url or ctx.url)
    credentials.save(target.url, None)
    console.print(f"forgot the saved login for {target.url}")
