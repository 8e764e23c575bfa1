"""The root command group: global options, the client, and error handling.

The only code in Roost that exits: RoostError -> one line and a hint, exit 1
(2 for usage); `--debug` shows the traceback instead.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import click

from roost.cli import credentials
from roost.cli.client import Client, resolve_target
from roost.cli.output import print_error
from roost.errors import RoostError, UsageError


@dataclass
class Context:
    url: str | None
    token: str | None
    debug: bool
    basic_auth: bool = False
    cacert: str | None = None
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        """The API client: --token, else -B's prompt, else a saved `roost login` for this URL."""
        if self._client is None:
            target = resolve_target(self.url)
            token = self.token
            basic = None
            if self.basic_auth:
                user = click.prompt("user")
                basic = (user, click.prompt("password", hide_input=True))
            elif token is None and target.socket is None:
                token = credentials.token_for(target.url)
            self._client = Client(target, token=token, basic=basic, verify=self.cacert or True)
        return self._client


class RoostGroup(click.Group):
    """A click group that prints RoostError as one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RoostError as error:
            if _debug_requested(ctx):
                raise
            print_error(error)
            sys.exit(2 if isinstance(error, UsageError) else 1)


def _debug_requested(ctx: click.Context) -> bool:
    obj = ctx.find_object(Context)
    return bool(obj and obj.debug) or "--debug" in sys.argv


pass_context = click.make_pass_decorator(Context)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
