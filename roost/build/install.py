"""Installs with uv: a relocatable venv holding exactly the app's dependencies and Roost's runner,
bytecode compiled; then the app's code compiled by that venv. Failures become BuildFailed with uv's own words.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from roost.build.deps import Dependencies, DependencyKind
from roost.build.enclosure import Enclosure
from roost.build.jail import BuildJail, Confined
from roost.build.process import Completed, error_summary, run
from roost.errors import BuildFailed, no_space

LOCKED_REQUIREMENTS = "roost-locked-requirements.txt"  # kept in the venv: a record of what the lock installed
INSTALL_HINTS = {
    DependencyKind.LOCK: "run `uv lock` where you develop, keep uv.lock beside pyproject.toml, and push again",
    DependencyKind.PYPROJECT: "fix [project].dependencies in pyproject.toml: every name and version must exist",
    DependencyKind.REQUIREMENTS: "fix requirements.txt: every name and version must exist on the package index",
    DependencyKind.NONE: "Roost's runner could not be installed: check that the daemon reaches the package index",
}
UV_NO_SPACE = "(os error 28)"  # how uv (Rust's io::Error) prints ENOSPC
HINT_PYTHON = "give the builder a working Python interpreter (3.11 or later)"

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Toolchain:
    """The uv binary, the interpreter venvs are made from, and the subprocess environment."""

    uv: str
    python: str
    env: Mapping[str, str]
    enclosure: Enclosure | None = None  # marks and groups every subprocess, for recovery after a crash
    jail: BuildJail | None = None  # one build's confinement (the app's uid, its cgroup): see jail.py
    read_only: tuple[Path, ...] = ()  # in a jail: what it must see besides its folders (the interpreter, uv)
    cache_dir: Path | None = None  # in a jail: uv's cache, writable

    def confine(self, cwd: Path, *writable: Path) -> Confined | None:
        """The jail around one subprocess that writes only `writable` (and uv's cache), or None."""
        if self.jail is None:
            return None
        cache = (self.cache_dir,) if self.cache_dir is not None else ()
        return self.jail.confine(cwd, [*writable, *cache], self.read_only)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


async def python_version(toolchain: Toolchain) -> str:
    """The full `sys.version` of the interpreter venvs are made from."""
    if toolchain.python == sys.executable:
        return sys.version
    lines: list[str] = []
    argv = [toolchain.python, "-c", "import sys; print(sys.version)"]
    try:
        completed = await run(
            argv, cwd=Path("/"), env=toolchain.env, enclosure=toolchain.enclosure, log=lines.append, prefix=""
        )
    except OSError as exc:
        raise BuildFailed(
            f"the builder's interpreter {toolchain.python} cannot start: {exc.strerror}", hint=HINT_PYTHON
        ) from exc
    if not completed.ok or not lines:
        raise BuildFailed(
            f"the builder's interpreter {toolchain.python} does not run: {error_summary(completed.tail)}",
            hint=HINT_PYTHON,
        )
    return " ".join(lines)


async def create_venv(
    toolchain: Toolchain,
    venv: Path,
    dependencies: Dependencies,
    code_dir: Path,
    runner_requirements: Sequence[str],
    log: Log,
) -> None:
    """Make a relocatable venv at `venv` and install the app's dependencies and the runner into it.

    One `uv pip install` resolves both together, so the runner can never
    change a version the app pinned; a conflict fails the build instead.
    """
    argv = [toolchain.uv, "venv", "--quiet", "--relocatable", "--python", toolchain.python, str(venv)]
    cwd = venv if toolchain.jail is not None else venv.parent  # a jailed build sees its own folders only
    completed = await run(
        argv, cwd=cwd, env=toolchain.env, enclosure=toolchain.enclosure, log=log, confined=toolchain.confine(cwd, venv)
    )
    _check_space(completed, venv.parent)
    if not completed.ok:
        raise BuildFailed(
            f"uv could not create a virtual environment with {toolchain.python}: {error_summary(completed.tail)}",
            hint=HINT_PYTHON,
        )
    sources = await _sources(toolchain, venv, dependencies, code_dir, log)
    if not sources and not runner_requirements:
        return
    argv = [toolchain.uv, "pip", "install", "--python", str(venv_python(venv)), "--compile-bytecode"]
    completed = await run(
        [*argv, *sources, *runner_requirements],
        cwd=code_dir,
        env=toolchain.env,
        enclosure=toolchain.enclosure,
        log=log,
        confined=toolchain.confine(code_dir, code_dir, venv),
    )
    _check_space(completed, venv.parent)
    _check_install(completed, dependencies)


async def _sources(toolchain: Toolchain, venv: Path, dependencies: Dependencies, code_dir: Path, log: Log) -> list[str]:
    """What `uv pip install` gets from the app: a requirements file or the declared requirements."""
    if dependencies.kind is DependencyKind.LOCK:
        return ["-r", str(await _export_lock(toolchain, venv, code_dir, log))]
    if dependencies.kind is DependencyKind.PYPROJECT:
        return list(dependencies.requirements)
    if dependencies.kind is DependencyKind.REQUIREMENTS:
        return ["-r", str(code_dir / "requirements.txt")]
    return []


async def _export_lock(toolchain: Toolchain, venv: Path, code_dir: Path, log: Log) -> Path:
    """uv.lock as pinned requirements, exactly as locked: no re-resolution (`--frozen`), no dev group."""
    exported = venv / LOCKED_REQUIREMENTS
    argv = [
        toolchain.uv, "export", "--quiet", "--frozen", "--no-hashes", "--no-dev", "--no-emit-project",
        "--no-header", "--python", toolchain.python, "--output-file", str(exported),
    ]  # fmt: skip
    completed = await run(
        argv,
        cwd=code_dir,
        env=toolchain.env,
        enclosure=toolchain.enclosure,
        log=log,
        confined=toolchain.confine(code_dir, code_dir, venv),
    )
    if not completed.ok:
        raise BuildFailed(
            f"uv could not read uv.lock: {error_summary(completed.tail)}", hint=INSTALL_HINTS[DependencyKind.LOCK]
        )
    return exported


def _check_space(completed: Completed, where: Path) -> None:
    """A uv that failed for a full disk is not the app's fault: NoSpace, not BuildFailed."""
    if not completed.ok and any(UV_NO_SPACE in line for line in completed.tail):
        raise no_space(where)


def _check_install(completed: Completed, dependencies: Dependencies) -> None:
    if completed.ok:
        return
    raise BuildFailed(
        f"uv could not install the dependencies from {dependencies.source}: {error_summary(completed.tail)}",
        hint=INSTALL_HINTS[dependencies.kind],
    )


async def compile_code(venv: Path, code_dir: Path, final_dir: Path, toolchain: Toolchain, log: Log) -> bool:
    """Compile the app's code with the venv's own python, so a read-only code dir never writes __pycache__.

    The paths inside the bytecode name `final_dir`, where the code will live.
    Returns False when some file did not compile (the errors went to `log`):
    the build check, not this step, decides whether that matters.
    """
    argv = [str(venv_python(venv)), "-m", "compileall", "-q", "-j", "0", "-d", str(final_dir), str(code_dir)]
    confined = None
    if toolchain.jail is not None:  # the venv's .pth files run here: the code is writable, the venv not
        confined = toolchain.jail.confine(code_dir, [code_dir], [*toolchain.read_only, venv])
    completed = await run(
        argv, cwd=code_dir, env=toolchain.env, enclosure=toolchain.enclosure, log=log, confined=confined
    )
    return completed.ok


__all__ = ["LOCKED_REQUIREMENTS", "Toolchain", "compile_code", "create_venv", "python_version", "venv_python"]
