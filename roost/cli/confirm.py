"""Asking before destroying: on a terminal, a yes/no question; elsewhere, --yes or nothing happens."""

from __future__ import annotations

import sys

import click

from roost.errors import UsageError

yes_option = click.option("-y", "--yes", is_flag=True, help="Do not ask; needed when no terminal can answer.")


def confirm_destruction(what: str, yes: bool, command: str) -> None:
    """Return when the user agreed to `what` (or passed --yes); raise UsageError otherwise.

    Without a terminal on stdin (a script, CI, a pipe), nobody can answer, so a missing --yes is
    a refusal rather than a silent yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to {what} without confirmation: no terminal to ask on", hint=f"run `{command} --yes`"
        )
    if not click.confirm(f"{what[0].upper()}{what[1:]}?", default=False):
        raise UsageError("nothing was deleted", hint=f"`{command} --yes` skips the question")
