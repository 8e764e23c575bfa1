"""The root command group: global options, the client, error handling and the help's layout.

The only code in Roost that exits: RoostError -> one line and a hint, exit 1
(2 for usage); `--debug` shows the traceback instead. The help lists commands in
sections, each with its whole first sentence (click would cut it with "...").
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click
from click.exceptions import NoArgsIsHelpError

from roost.cli import credentials
from roost.cli.client import Client, resolve_target
from roost.cli.output import print_error
from roost.cli.suggest import with_suggestion
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
    """A click group that prints RoostError as one line and a hint instead of a traceback, and
    lists its commands under `sections` (title -> command names; the rest under "Commands")."""

    def __init__(self, *args: Any, sections: dict[str, tuple[str, ...]] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("subcommand_metavar", "COMMAND [ARGS]")
        super().__init__(*args, **kwargs)
        self.sections = sections or {}

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """click's main, but a usage error (a typo, a missing argument) is one line and a hint too,
        instead of click's usage block."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except NoArgsIsHelpError as error:
            error.show()  # `roost token` alone: its help, as git and fly do
            sys.exit(error.exit_code)
        except click.UsageError as error:
            path = error.ctx.command_path if error.ctx is not None else "roost"
            print_error(UsageError(error.format_message(), hint=f"`{path} --help` shows the usage and examples"))
            sys.exit(error.exit_code)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RoostError as error:
            if _debug_requested(ctx):
                raise
            print_error(with_suggestion(error, lambda: _app_names(ctx), sys.argv[1:]))
            sys.exit(2 if isinstance(error, UsageError) else 1)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listed = {name: self.get_command(ctx, name) for name in self.list_commands(ctx)}
        shown = {name: cmd for name, cmd in listed.items() if cmd is not None and not cmd.hidden}
        placed: set[str] = set()
        for title, names in self.sections.items():
            rows = [(name, _summary(shown[name])) for name in names if name in shown]
            placed.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [(name, _summary(cmd)) for name, cmd in shown.items() if name not in placed]
        if rest:
            with formatter.section("Commands"):
                formatter.write_dl(rest)


def _summary(command: click.Command) -> str:
    """The command's first sentence, whole: a summary cut with "..." helps nobody."""
    return command.get_short_help_str(limit=10_000)


def _app_names(ctx: click.Context) -> list[str]:
    obj = ctx.find_object(Context)
    if obj is None:
        return []
    return [str(app["name"]) for app in obj.client().request("GET", "/v1/apps")]


def _debug_requested(ctx: click.Context) -> bool:
    obj = ctx.find_object(Context)
    return bool(obj and obj.debug) or "--debug" in sys.argv


pass_context = click.make_pass_decorator(Context)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
