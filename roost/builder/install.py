"""Installs with uv: a relocatable venv holding exactly the app's dependencies and Roost's runner,
bytecode compiled; then the app's code compiled by that venv. Failures become BuildFailed with uv's own words.

An install tries the trusted step first (wheels only, the shared cache: build/cache.py) and runs
uv where a package's code can run (an sdist's build, with the app's cache view) only when that fails.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from roost.builder.cache import UvCache, admits_trusted, has_own_sources, requirement_lines
from roost.builder.deps import Dependencies, DependencyKind
from roost.builder.enclosure import Enclosure
from roost.builder.jail import BuildJail, Confined
from roost.builder.process import Completed, error_summary, run
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
    """The uv binary, the interpreter venvs are made from, the subprocess environment and the uv cache."""

    uv: str
    python: str
    env: Mapping[str, str]
    cache: UvCache
    enclosure: Enclosure | None = None  # marks and groups every subprocess, for recovery after a crash
    jail: BuildJail | None = None  # one build's confinement (the app's uid, its cgroup): see jail.py
    read_only: tuple[Path, ...] = ()  # in a jail: what it must see besides its folders (the interpreter, uv)

    def confine(self, cwd: Path, *writable: Path) -> Confined | None:
        """The jail around one subprocess that writes only `writable`, or None."""
        if self.jail is None:
            return None
        return self.jail.confine(cwd, list(writable), self.read_only)


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
    *,
    app: str,
) -> None:
    """Make a relocatable venv at `venv` and install the app's dependencies and the runner into it.

    One `uv pip install` resolves both together, so the runner can never
    change a version the app pinned; a conflict fails the build instead.
    The trusted step goes first, as the daemon and outside the jail; the untrusted one (in the
    jail, with `app`'s cache view, owned by the jail's uid) only when some package must be built.
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
    if await _install_trusted(toolchain, venv, dependencies, code_dir, runner_requirements, log):
        await _compile_venv(toolchain, venv, log)
        return
    jail = toolchain.jail
    owner = (jail.uid, jail.gid) if jail is not None else (None, None)
    view = await asyncio.to_thread(toolchain.cache.view, app, *owner)
    env = with_cache(toolchain.env, view.environ())
    packages = [*sources, *runner_requirements]
    offline = dependencies.kind is DependencyKind.LOCK and view.warm
    install = toolchain.cache.untrusted_install
    completed = await _uv_install(
        toolchain,
        install,
        venv,
        packages,
        env,
        code_dir,
        offline,
        log,
        lambda: toolchain.confine(code_dir, code_dir, venv, *view.binds()),
    )
    _check_space(completed, venv.parent)
    _check_install(completed, dependencies)


def with_cache(env: Mapping[str, str], cache: Mapping[str, str]) -> dict[str, str]:
    """`env` with the uv cache settings `cache` in force. A jailed build's toolchain says
    UV_NO_CACHE (its other uv steps get no cache); the two install steps each get theirs, the
    trusted one the shared cache, the untrusted one the app's view."""
    return {**{k: v for k, v in env.items() if k != "UV_NO_CACHE"}, **cache}


async def _install_trusted(
    toolchain: Toolchain,
    venv: Path,
    dependencies: Dependencies,
    code_dir: Path,
    runner_requirements: Sequence[str],
    log: Log,
) -> bool:
    """Install wheels only, as the daemon with the shared cache; False when a package must be
    built from source, or the requirements name a file or URL (then nothing was installed)."""
    if await asyncio.to_thread(_has_own_sources, code_dir):
        log("    the app's uv settings name its own indexes or sources: installing where a build's code may run")
        return False
    packages = await _index_requirements(venv, dependencies, code_dir, runner_requirements)
    if packages is None:
        log("    the requirements name files or URLs: installing them where a build's code may run")
        return False
    env = with_cache(toolchain.env, toolchain.cache.trusted_environ())
    offline = dependencies.kind is DependencyKind.LOCK  # a locked app on a warm cache needs no network
    install = toolchain.cache.trusted_install
    completed = await _uv_install(toolchain, install, venv, packages, env, venv.parent, offline, log, lambda: None)
    _check_space(completed, venv.parent)
    if not completed.ok:
        log(f"    not from wheels alone ({error_summary(completed.tail)}): building where a build's code may run")
    return completed.ok


async def _uv_install(
    toolchain: Toolchain,
    install: Callable[..., list[str]],
    venv: Path,
    packages: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    offline: bool,
    log: Log,
    confine: Callable[[], Confined | None],
) -> Completed:
    """`install`'s argv run (in `confine()`'s jail, a new one for each run); offline first when
    `offline`, and again online if that fails."""
    python = venv_python(venv)
    if offline:
        quiet: list[str] = []
        argv = install(toolchain.uv, python, packages, offline=True)
        completed = await run(
            argv, cwd=cwd, env=env, enclosure=toolchain.enclosure, log=quiet.append, confined=confine()
        )
        if completed.ok:
            for line in quiet:
                log("    " + line)
            return completed
    argv = install(toolchain.uv, python, packages, offline=False)
    return await run(argv, cwd=cwd, env=env, enclosure=toolchain.enclosure, log=log, confined=confine())


async def _index_requirements(
    venv: Path, dependencies: Dependencies, code_dir: Path, runner_requirements: Sequence[str]
) -> list[str] | None:
    """The requirements as argv strings when every one comes from the index, else None."""
    if dependencies.kind is DependencyKind.LOCK:
        text = await asyncio.to_thread((venv / LOCKED_REQUIREMENTS).read_text)
        lines = requirement_lines(text.splitlines())
    elif dependencies.kind is DependencyKind.REQUIREMENTS:
        text = await asyncio.to_thread((code_dir / "requirements.txt").read_text)
        lines = requirement_lines(text.splitlines())
    else:
        lines = list(dependencies.requirements)
    packages = [*lines, *runner_requirements]
    return packages if admits_trusted(packages) else None


def _has_own_sources(code_dir: Path) -> bool:
    try:
        pyproject: str | None = (code_dir / "pyproject.toml").read_text()
    except FileNotFoundError:
        pyproject = None
    except (OSError, ValueError):
        return True  # unreadable: uv itself, in the untrusted step, says why
    return has_own_sources(pyproject, (code_dir / "uv.toml").exists())


async def _compile_venv(toolchain: Toolchain, venv: Path, log: Log) -> None:
    """Bytecode for what the trusted step installed, by `python -I -S`: no site, so no `.pth`
    file of a package runs while the daemon compiles (uv's `--compile-bytecode` starts the venv's
    python with site: a `.pth` runs then). One process: `-j 0` goes through a forkserver that
    cost more CPU than it saved (bench/buildcache.py, 2 busy cores)."""
    packages = await asyncio.to_thread(lambda: sorted(venv.glob("lib/python*/site-packages")))
    argv = [str(venv_python(venv)), "-I", "-S", "-m", "compileall", "-q", "-j", "1", *map(str, packages)]
    completed = await run(argv, cwd=venv, env=toolchain.env, enclosure=toolchain.enclosure, log=log)
    if not completed.ok:
        log("    warning: some installed files did not compile (above); they will be compiled when imported")


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
