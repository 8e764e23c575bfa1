"""Which edge modules are compiled with mypyc, and whether the compiled ones may be used.

The edge's hot path (parsing, forwarding, counting) is plain typed Python
that `setup.py` also compiles with mypyc when the machine has a C compiler:
the same code, about twice as fast per request (bench/proxy.py measures it).
A compiled module (`client.cpython-311-x86_64-linux-gnu.so` next to
`client.py`) wins over its source at import, so a stale one would silently
run old code after an edit. The build records a hash of every compiled
source; `prefer_fresh()`, run by `roost/edge/__init__.py` before any of
these modules is imported, compares them and, on any difference (or with
ROOST_PURE_PYTHON=1), makes Python import the sources instead.

Standard library only: setup.py loads this file before Roost's dependencies exist.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
PACKAGE = "roost.edge"
COMPILED = (
    "activator",
    "admission",
    "client",
    "context",
    "counters",
    "deadline",
    "exchange",
    "guard",
    "request",
    "response",
    "routes",
    "edge_settings",
    "split",
    "tunnel",
    "upstream",
    "wire",
)
GROUP = f"{PACKAGE}._native"  # mypyc's shared library: roost/edge/_native__mypyc.*.so
MANIFEST = HERE / "_native.sha256"
PURE_ENV = "ROOST_PURE_PYTHON"

# Why the edge runs as pure Python, or "" when it runs compiled; set by prefer_fresh().
reason_pure = "not checked yet"


def source_hashes(directory: Path = HERE) -> str:
    """The manifest text: one `sha256  name.py` line per compiled module."""
    lines = []
    for name in COMPILED:
        digest = hashlib.sha256((directory / f"{name}.py").read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}.py\n")
    return "".join(lines)


def _has_extension(directory: Path, stem: str) -> bool:
    return any((directory / f"{stem}{suffix}").exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def why_pure(directory: Path = HERE) -> str:
    """Why the compiled modules in `directory` cannot be used; "" when they match their sources."""
    if os.environ.get(PURE_ENV) == "1":
        return f"{PURE_ENV}=1"
    stems = ["_native__mypyc", *COMPILED]
    missing = [stem for stem in stems if not _has_extension(directory, stem)]
    if len(missing) == len(stems):
        return "not compiled (no C compiler when it was installed, or ROOST_PURE_PYTHON=1 then)"
    if missing:
        return f"compiled modules missing: {', '.join(missing)}"
    try:
        recorded = (directory / MANIFEST.name).read_text()
    except OSError:
        return "no record of what was compiled"
    if recorded != source_hashes(directory):
        return "compiled modules are older than their sources (rebuild: make install)"
    return ""


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the edge's compiled modules as their .py sources, ahead of the .so files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.names = {f"{PACKAGE}.{name}" for name in COMPILED}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        source = self.directory / f"{fullname.rpartition('.')[2]}.py"
        return importlib.util.spec_from_file_location(fullname, source)


def prefer_fresh() -> None:
    """Run once, before the compiled modules are imported: use them only if they are fresh."""
    global reason_pure
    reason_pure = why_pure()
    if not reason_pure:
        try:  # the shared library holds all the compiled code: one that cannot load is of no use
            importlib.import_module(f"{GROUP}__mypyc")
        except ImportError as exc:
            reason_pure = f"the compiled modules do not load ({exc})"
    if reason_pure and not any(isinstance(finder, _SourceFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder(HERE))


def is_compiled() -> bool:
    """Whether the edge's modules were imported compiled."""
    module = sys.modules.get(f"{PACKAGE}.client")
    spec = module.__spec__ if module is not None else None
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


def describe() -> str:
    """One line for logs and benchmarks: how the edge runs."""
    if is_compiled():
        return "compiled with mypyc"
    return f"pure Python ({reason_pure})" if reason_pure else "pure Python"


if __name__ == f"{PACKAGE}.native":  # imported by the package (setup.py loads it under another name)
    prefer_fresh()
