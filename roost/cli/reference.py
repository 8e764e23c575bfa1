"""The CLI reference (docs/cli.md), generated from the commands themselves so it cannot drift.

`python -m roost.cli.reference > docs/cli.md` writes it; a test fails when the
file differs from what this prints.
"""

from __future__ import annotations

import click

from roost.cli.examples import example_lines
from roost.cli.main import cli

HEADER = """\
# Roost CLI reference

Generated from `roost --help` by `python -m roost.cli.reference > docs/cli.md`;
a test fails when this file and the commands disagree.
"""


def _option_rows(command: click.Command, ctx: click.Context) -> list[tuple[str, str]]:
    """The options' help records; the help option from the context's names, since click caches
    each command's help option from whichever context first asked (a test's, say)."""
    records = [p.get_help_record(ctx) for p in command.get_params(ctx) if isinstance(p, click.Option)]
    rows = [record for record in records if record is not None and not record[0].endswith("--help")]
    return [*rows, (", ".join(ctx.help_option_names), "Show this message and exit.")]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _section(name: str, command: click.Command, parent: click.Context) -> list[str]:
    ctx = click.Context(command, info_name=name, parent=parent)
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"## `{ctx.command_path}`", "", "```", f"{ctx.command_path} {usage}".rstrip(), "```", ""]
    lines += [(command.help or "").replace("\b\n", "").strip(), ""]
    rows = _option_rows(command, ctx)
    if rows:
        lines += ["| option | what it does |", "| --- | --- |"]
        lines += [f"| `{_cell(flags)}` | {_cell(text)} |" for flags, text in rows]
        lines.append("")
    if examples := example_lines(command):
        lines += ["```sh", *examples, "```", ""]
    if isinstance(command, click.Group):
        for sub_name in command.list_commands(ctx):
            sub = command.get_command(ctx, sub_name)
            if sub is not None and not sub.hidden:
                lines += _section(sub_name, sub, ctx)
    return lines


def reference() -> str:
    root = click.Context(cli, info_name="roost", **cli.context_settings)
    lines = [HEADER]
    lines += _section_root(root)
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        if command is not None and not command.hidden:
            lines += _section(name, command, root)
    return "\n".join(lines).rstrip() + "\n"


def _section_root(root: click.Context) -> list[str]:
    lines = ["## Options of every command", "", "| option | what it does |", "| --- | --- |"]
    lines += [f"| `{_cell(flags)}` | {_cell(text)} |" for flags, text in _option_rows(cli, root)]
    return [*lines, ""]


if __name__ == "__main__":
    print(reference(), end="")  # noqa: T201 - the generator's output is the document
