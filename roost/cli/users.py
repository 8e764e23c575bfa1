"""`roost user`: the roles and apps of password users, kept in $ROOST_HOME/passwords.

Like `roost password`, these edit the local file (whoever may write it is an admin); the daemon
reads each change at the next request, and tokens made by `roost login` follow their user.
"""

from __future__ import annotations

from pathlib import Path

import click

from roost.cli.base import RoostGroup, json_option
from roost.cli.output import console, print_json, show, table
from roost.cli.security import ROLE_CHOICE
from roost.errors import UsageError
from roost.grants import Grants, Role, check_pattern, check_role
from roost.passwords import PasswordFile, check_user_name
from roost.serve_settings import default_home

home_option = click.option(
    "--home", type=click.Path(path_type=Path), envvar="ROOST_HOME", help="The daemon's home [env ROOST_HOME]."
)


def _file(home: Path | None) -> PasswordFile:
    return PasswordFile((home or default_home()) / "passwords")


@click.group("user", cls=RoostGroup)
def user() -> None:
    """Users' roles: list, grant, revoke (passwords: `roost password`)."""


@user.command("list")
@home_option
@json_option
def user_list(home: Path | None, as_json: bool) -> None:
    """List the users and what each may do."""
    accounts = _file(home).accounts()
    if as_json:
        print_json(
            [
                {
                    "name": name,
                    "admin": a.grants.admin,
                    "grants": [{"role": g.role.value, "app": g.pattern} for g in a.grants.scoped],
                    "access": a.grants.describe(),
                }
                for name, a in sorted(accounts.items())
            ]
        )
        return
    rows = table("USER", "ACCESS")
    for name, account in sorted(accounts.items()):
        rows.add_row(name, account.grants.describe())
    show(rows)


@user.command("grant")
@click.argument("name", metavar="USER")
@click.argument("role", type=ROLE_CHOICE)
@click.argument("apps", nargs=-1, metavar="[APP|PATTERN]")
@home_option
def user_grant(name: str, role: str, apps: tuple[str, ...], home: Path | None) -> None:
    """Give USER ROLE on each APP|PATTERN given (a name or a glob like 'shop-*'); admin takes none.

    A role on an APP replaces the role USER had on that exact APP; any role but admin replaces
    admin, so an admin can be narrowed to some apps."""
    check_user_name(name)
    wanted = check_role(role)
    Grants.of(wanted, list(apps))  # refuse admin with apps, or a role without any, before writing
    passwords = _file(home)
    grants = _current(passwords, name)
    for pattern in apps or ("*",):
        grants = grants.with_grant(wanted, check_pattern(pattern))
    passwords.set_grants(name, grants)
    console.print(f"[bold]{name}[/] now has {grants.describe()}")


@user.command("revoke")
@click.argument("name", metavar="USER")
@click.argument("apps", nargs=-1, required=True, metavar="APP|PATTERN")
@home_option
def user_revoke(name: str, apps: tuple[str, ...], home: Path | None) -> None:
    """Take back USER's role on each APP, as it was granted (the same name or pattern)."""
    check_user_name(name)
    passwords = _file(home)
    grants = _current(passwords, name)
    if grants.admin:
        raise UsageError(
            f"{name} is an admin, of every app",
            hint=f"narrow it to some apps instead: roost user grant {name} deployer APP",
        )
    granted = {g.pattern for g in grants.scoped}
    missing = [app for app in apps if app not in granted]
    if missing:
        raise UsageError(f"{name} has no grant on {', '.join(missing)}", hint=f"{name} has {grants.describe()}")
    narrowed = grants.without(list(apps))
    passwords.set_grants(name, narrowed)
    console.print(f"[bold]{name}[/] now has {narrowed.describe()}")


def _current(passwords: PasswordFile, name: str) -> Grants:
    grants = passwords.grants(name)
    if grants is None:
        raise UsageError(f"no user named '{name}'", hint=f"add it first: roost password {name} --role {Role.VIEWER}")
    return grants
