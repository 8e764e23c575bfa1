"""Build hook: compile the edge's hot path with mypyc when it can; pure Python otherwise.

Everything else about the package is in pyproject.toml. The compiled modules
are the same typed sources as roost/edge/*.py (see roost/edge/native.py for
which, and how a stale build is never used). Compiling needs a C compiler
and Python's headers; without them, or with ROOST_PURE_PYTHON=1, Roost
installs as pure Python and runs the same, slower.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def warn(line: str) -> None:
    sys.stderr.write(line + "\n")


def load_native() -> Any:
    spec = importlib.util.spec_from_file_location("roost_native_build", HERE / "roost" / "edge" / "native.py")
    if spec is None or spec.loader is None:
        raise ImportError("roost/edge/native.py is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def why_not_compile() -> str:
    if os.environ.get("ROOST_PURE_PYTHON") == "1":
        return "ROOST_PURE_PYTHON=1"
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        return "no Python headers (Debian: apt-get install python3-dev)"
    return ""


class OptionalBuildExt(build_ext):
    """A failed compile is a warning: the pure-Python edge is complete on its own."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - whatever the compiler says, the sources still work
            warn(f"warning: the edge was not compiled ({exc}); it runs as pure Python")

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001 - as above
            warn(f"warning: {ext.name} was not compiled ({exc}); the edge runs as pure Python")


# pip runs this file three times: for the build requirements (egg_info), the metadata
# (dist_info), then the build. Only the build needs the C that mypyc generates, and
# generating it is most of an install's time: the first two runs skip it.
METADATA_COMMANDS = {"egg_info", "dist_info"}
BUILD_COMMANDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop"}


def is_metadata_only(argv: list[str]) -> bool:
    words = set(argv[1:])
    return bool(words & METADATA_COMMANDS) and not words & BUILD_COMMANDS


def ext_modules() -> list[Any]:
    if is_metadata_only(sys.argv):
        return []
    reason = why_not_compile()
    if reason:
        warn(f"note: not compiling the edge: {reason}; it runs as pure Python")
        return []
    native = load_native()
    from mypyc.build import mypycify

    sources = [f"roost/edge/{name}.py" for name in native.COMPILED]
    # The build environment has mypy but not Roost's dependencies: their types are Any here,
    # which changes nothing in the generated code (mypy --strict checks them in `make check`).
    options = ["--config-file=", "--ignore-missing-imports", "--follow-imports=silent"]
    modules = mypycify([*options, *sources], opt_level="3", group_name=native.GROUP)
    native.MANIFEST.write_text(native.source_hashes())
    return list(modules)


setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
