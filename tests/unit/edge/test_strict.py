"""The edge never makes httptools lenient: llhttp's lenient flags re-open the smuggling holes
(obs-fold, bare LF, CL with TE, ...) that the request table checks are closed."""

from __future__ import annotations

import ast
from pathlib import Path

import roost.edge

FORBIDDEN = "set_dangerous_leniencies"
EDGE = Path(roost.edge.__file__).parent


def names_in(tree: ast.AST) -> set[str]:
    """Every identifier, attribute and string constant: a call by name, through an alias
    (`from httptools... import set_dangerous_leniencies`) or by `getattr(parser, "...")`."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.alias):
            found.add(node.name.rsplit(".", 1)[-1])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
    return found


def test_the_scan_finds_every_spelling() -> None:
    for source in (
        "parser.set_dangerous_leniencies(lenient_flags=True)",
        "from httptools.parser.parser import set_dangerous_leniencies",
        "getattr(parser, 'set_dangerous_leniencies')(True)",
    ):
        assert any(FORBIDDEN in name for name in names_in(ast.parse(source))), source


def test_no_edge_module_makes_httptools_lenient() -> None:
    modules = sorted(EDGE.rglob("*.py"))
    assert {path.name for path in modules} >= {"client.py", "upstream.py"}  # the two parser owners
    for path in modules:
        names = names_in(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        assert not [name for name in names if FORBIDDEN in name], f"{path} calls {FORBIDDEN}"
