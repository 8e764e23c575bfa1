"""The command line: the product's face and the only code that exits."""

from __future__ import annotations

from roost.cli.main import cli


def main() -> None:
    cli(prog_name="roost")


__all__ = ["cli", "main"]
