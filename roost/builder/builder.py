"""The builder: a deployment's archive in, its code dir and venv out, at most `max_parallel` at once.
Orchestrates unpack, install and compile; blocking work runs in threads or subprocesses, never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from roost.builder.cache import UvCache, views_dir
from roost.builder.deps import Dependencies, DependencyKind, find_dependencies, venv_key
from roost.builder.enclosure import Enclosure, home_id
from roost.builder.fs import chown_tree, in_thread, remove_tree, replace_dir
from roost.builder.install import Toolchain, compile_code, create_venv, python_version
from roost.builder.jail import BuildJail, BuildJails, BuildLimit, Stop
from roost.builder.process import build_env, uv_binary
from roost.builder.unpack import LIMIT_MEMBERS, LIMIT_UNPACKED_BYTES, UnpackStats, unpack_archive
from roost.builder.venv import GRACE_SECONDS, VenvCache
from roost.errors import BuildFailed, UsageError, is_no_space, no_space
from roost.model import APP_NAME_RE, DEPLOYMENT_ID_RE, is_valid_app_name
from roost.units import format_duration, human_size

Log = Callable[[str], None]
TIMEOUT_BUILD = 15 * 60.0  # seconds: `roost serve --build-timeout`
logger = logging.getLogger("roost.builder")


@dataclass(frozen=True, slots=True)
class BuildRequest:
    """Build `archive` (a blob of the registry) as `deployment` of `app`."""

    app: str
    deployment: str
    archive: Path


@dataclass(frozen=True, slots=True)
class BuildStep:
    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class BuildOutput:
    """A finished build. `venv_key` is also the name of `venv_dir`, for `gc_venvs`."""

    code_dir: Path
    venv_dir: Path
    venv_key: str
    reused_venv: bool
    seconds: float
    steps: tuple[BuildStep, ...]


STEP_LABELS = {
    "unpack": "unpack the archive",
    "dependencies": "install dependencies (uv)",
    "compile": "compile bytecode",
}


def step_line(label: str, seconds: float) -> str:
    """The log line of a finished step, "✓ install dependencies (uv) 1.23s": `roost push` shows it
    as it comes and parses it back for `--json` (the contract is "✓ LABEL SECONDSs")."""
    return f"✓ {label} {seconds:.2f}s"


class _Steps:
    """Times each named step of one build, and says so in the log when it ends well."""

    def __init__(self, log: Log) -> None:
        self.done: list[BuildStep] = []
        self._log = log

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Times the block; it may replace the label shown (the one-item list it gets)."""
        started = time.monotonic()
        label = [STEP_LABELS.get(name, name)]
        yield label
        self.done.append(BuildStep(name, time.monotonic() - started))
        self._log(step_line(label[0], self.done[-1].seconds))


class Builder:
    """Builds deployments under `home`: `deployments/<app>/<deployment>/code`, `venvs/<key>`, `cache/uv`.

    `python` is the interpreter venvs are made from; `cache_dir` moves uv's
    cache elsewhere (tests share one across homes); `enclosure` marks every build
    subprocess (and puts it in the builds' cgroup) so a restart can kill what a crash left.

    Example::

        builder = Builder(home, RUNNER_REQUIREMENTS)
        output = await builder.build(BuildRequest("hello", "a1b2c3d4", registry.path(digest)), print)
        # output.code_dir, output.venv_dir / "bin" / "python"
    """

    def __init__(
        self,
        home: Path,
        runner_requirements: Sequence[str],
        *,
        python: str = sys.executable,
        max_parallel: int = 2,
        limit_unpacked_bytes: int = LIMIT_UNPACKED_BYTES,
        limit_members: int = LIMIT_MEMBERS,
        cache_dir: Path | None = None,
        enclosure: Enclosure | None = None,
        jails: BuildJails | None = None,
        timeout_build: float = TIMEOUT_BUILD,
    ) -> None:
        self.home = home
        self.runner_requirements = tuple(runner_requirements)
        self.python = python
        self.max_parallel = max_parallel
        self.limit_unpacked_bytes = limit_unpacked_bytes
        self.limit_members = limit_members
        self.cache_dir = cache_dir or home / "cache" / "uv"
        self.enclosure = enclosure or Enclosure(home_id(home))
        self.jails = jails
        self.timeout_build = timeout_build
        self._venvs = VenvCache(home / "venvs")
        self._slots = asyncio.Semaphore(max_parallel)
        self._toolchain: Toolchain | None = None
        self._python_version: str | None = None

    def deployment_dir(self, app: str, deployment: str) -> Path:
        """Where a deployment's files live. Raises UsageError for names that are not Roost's."""
        if not (APP_NAME_RE.fullmatch(app) and is_valid_app_name(app)):
            raise UsageError(f"{app!r} is not an app name", hint="app names are DNS labels, like 'hello'")
        if not DEPLOYMENT_ID_RE.fullmatch(deployment):
            raise UsageError(f"{deployment!r} is not a deployment id", hint="`roost deployments APP` lists them")
        return self.home / "deployments" / app / deployment

    async def build(self, request: BuildRequest, log: Log) -> BuildOutput:
        """Build one deployment, reporting progress to `log` one line at a time.

        Waits for a free build slot first. Raises BuildFailed, with uv's own
        error for a failed install, and NoSpace when the disk fills; whatever happens, nothing half-built is
        left at the final paths. Cancelling it stops its subprocesses.
        """
        code_dir = self.deployment_dir(request.app, request.deployment) / "code"
        if self._slots.locked():
            log(f"==> waiting for a free build slot ({self.max_parallel} builds running)")
        async with self._slots:
            return await self._build(request, code_dir, log)

    async def _build(self, request: BuildRequest, code_dir: Path, log: Log) -> BuildOutput:
        started = time.monotonic()
        steps = _Steps(log)
        jail = await self.jails.open(request.app, request.deployment) if self.jails is not None else None
        staging = code_dir.with_name(f".code-{secrets.token_hex(4)}")
        try:
            toolchain = await self._toolchain_in(jail, request.app)
            async with _limit_time(self.timeout_build):
                venv, key, reused = await self._steps(request, staging, toolchain, steps, log)
            await in_thread(replace_dir, staging, code_dir)
            _stops(jail, log)  # a limit that refused something the build got over: said all the same
        except BaseException as exc:
            await in_thread(remove_tree, staging)
            if is_no_space(exc):  # the unpack, a venv, a move or the build log filled the disk
                raise no_space(self.home) from exc
            stop = _stops(jail, log)
            if stop is not None and isinstance(exc, BuildFailed):
                raise BuildFailed(f"the build was {stop.line()}", hint=stop.hint()) from exc
            raise
        finally:
            if jail is not None:
                await in_thread(jail.close)
        seconds = time.monotonic() - started
        log(f"==> done in {seconds:.1f}s")
        return BuildOutput(code_dir, venv, key, reused, seconds, tuple(steps.done))

    async def _steps(
        self, request: BuildRequest, staging: Path, toolchain: Toolchain, steps: _Steps, log: Log
    ) -> tuple[Path, str, bool]:
        """Unpack, install, compile into `staging`; the venv, its key, and whether it was reused."""
        with steps.step("unpack"):
            await self._unpack(request.archive, staging, log)
        dependencies = await asyncio.to_thread(find_dependencies, staging)
        key = await self._venv_key(dependencies, request.archive, toolchain)
        await _give(toolchain.jail, staging)
        with steps.step("dependencies") as label:
            venv, reused = await self._install(request.app, key, dependencies, staging, toolchain, log)
            if reused:
                label[0] = "reuse the virtual environment"
        with steps.step("compile"):
            await self._compile(venv, staging, code_dir_of(staging), toolchain, log)
        await _take_back(toolchain.jail, staging)
        return venv, key, reused

    async def remove_leftovers(self) -> list[Path]:
        """Remove what builds cut short by a daemon crash left beside deployments' code: `.code-*`
        staging trees (never served: only a finished build is moved to `code`) and `.trash-*`
        trees whose removal was under way. Call it before any build starts (daemon recovery);
        returns what it removed.

        The build processes of the crashed run (uv, compileall and its workers, re-parented to
        pid 1) are killed first: alive, they would write a removed staging tree back."""
        killed = await asyncio.to_thread(self.enclosure.kill_stragglers)
        if killed:
            logger.warning("killed %d build process(es) of an earlier run: %s", len(killed), killed)
        root = self.home / "deployments"
        found = await asyncio.to_thread(
            lambda: sorted([*root.glob("*/*/.code-*"), *root.glob("*/*/.trash-*")]) if root.is_dir() else []
        )
        for path in found:
            await in_thread(remove_tree, path)
        return found

    def _ensure_toolchain(self) -> Toolchain:
        if self._toolchain is None:
            try:
                uv = uv_binary()
            except FileNotFoundError as exc:
                raise BuildFailed("the uv binary is missing", hint="reinstall Roost: uv comes with it") from exc
            env = build_env(self.cache_dir)
            cache = UvCache(self.cache_dir, views_dir(self.cache_dir, self.home, home_id(self.home)))
            self._toolchain = Toolchain(uv=uv, python=self.python, env=env, cache=cache, enclosure=self.enclosure)
        return self._toolchain

    async def _toolchain_in(self, jail: BuildJail | None, app: str) -> Toolchain:
        """The toolchain of one build: in a jail, uv and the interpreter at their real paths (all the
        jail shows of them) and, for an app with its own uid, its view of the shared uv cache (build/cache.py)."""
        toolchain = self._ensure_toolchain()
        if jail is None:
            return toolchain
        uv, python = await asyncio.to_thread(
            lambda: (os.path.realpath(toolchain.uv), os.path.realpath(toolchain.python))
        )
        read_only = [Path(uv), *_prefix(Path(python))]
        # No uv cache in the jail but for an untrusted install, which gets the app's view of the
        # shared cache (builder/cache.py) only then: making a view walks the whole shared cache.
        env = {k: v for k, v in toolchain.env.items() if k not in ("TMPDIR", "UV_CACHE_DIR")}
        env.update(UV_NO_CACHE="1", HOME="/tmp")  # noqa: S108 - the jail's own private /tmp
        return dataclasses.replace(toolchain, uv=uv, python=python, env=env, jail=jail, read_only=tuple(read_only))

    async def _unpack(self, archive: Path, staging: Path, log: Log) -> UnpackStats:
        try:
            size = (await asyncio.to_thread(archive.stat)).st_size
        except FileNotFoundError as exc:
            raise BuildFailed(f"the archive {archive.name} is missing", hint="run `roost push` again") from exc
        log(f"==> unpacking the archive ({human_size(size)})")
        await asyncio.to_thread(staging.parent.mkdir, parents=True, exist_ok=True)
        stats = await in_thread(
            unpack_archive,
            archive,
            staging,
            limit_unpacked_bytes=self.limit_unpacked_bytes,
            limit_members=self.limit_members,
        )
        log(f"    {stats.files} files, {stats.directories} folders, {human_size(stats.unpacked_bytes)}")
        return stats

    async def _venv_key(self, dependencies: Dependencies, archive: Path, toolchain: Toolchain) -> str:
        if self._python_version is None:
            self._python_version = await python_version(toolchain)
        source = await asyncio.to_thread(_sha256, archive) if dependencies.uses_local_code else ""
        return venv_key(dependencies, self._python_version, self.runner_requirements, source)

    async def _install(
        self, app: str, key: str, dependencies: Dependencies, code_dir: Path, toolchain: Toolchain, log: Log
    ) -> tuple[Path, bool]:
        async def create(venv: Path) -> None:
            what = "Roost's runner" if dependencies.kind is DependencyKind.NONE else "dependencies"
            log(f"==> installing {what} with uv ({dependencies.source})")
            if toolchain.jail is not None:
                await asyncio.to_thread(venv.mkdir, parents=True)  # bound into the jail: it must exist
                await _give(toolchain.jail, venv)
            await create_venv(toolchain, venv, dependencies, code_dir, self.runner_requirements, log, app=app)
            await _take_back(toolchain.jail, venv)  # before it is sealed: from now on, the daemon's

        venv, reused = await self._venvs.ensure(key, create)
        if reused:
            unchanged = "" if dependencies.kind is DependencyKind.NONE else " unchanged"
            log(f"==> reusing the virtual environment {key[:12]} ({dependencies.source}{unchanged})")
        return venv, reused

    async def _compile(self, venv: Path, staging: Path, code_dir: Path, toolchain: Toolchain, log: Log) -> None:
        log("==> compiling bytecode")
        if not await compile_code(venv, staging, code_dir, toolchain, log):
            log("    warning: some files did not compile (above); the build check shows whether the app starts")

    async def remove_deployment(self, app: str, deployment: str) -> int:
        """Remove a deployment's files (its venv stays, for `gc_venvs`); returns the bytes freed."""
        path = self.deployment_dir(app, deployment)
        return await in_thread(_remove_deployment_dir, path)

    async def gc_cache_views(self, apps: Collection[str]) -> list[tuple[str, int]]:
        """Remove the uv cache views of apps not in `apps` (removed apps'); (app, bytes freed) of each."""

        def prune() -> list[tuple[str, int]]:
            return UvCache(self.cache_dir, views_dir(self.cache_dir, self.home, home_id(self.home))).prune_views(apps)

        return await asyncio.to_thread(prune)

    async def gc_venvs(
        self, referenced_keys: set[str], *, grace_seconds: float = GRACE_SECONDS, now: float | None = None
    ) -> list[tuple[str, int]]:
        """Remove the venvs that no key in `referenced_keys` names; returns (key, bytes freed) for each.

        A deployment's key is `BuildOutput.venv_key`, also the name of its
        `venv_dir`. Venvs used (created or reused) within `grace_seconds` before
        `now` are kept, so a build that has not been recorded yet keeps its venv;
        a caller that knows no build is running may pass a short grace.
        """
        return await self._venvs.gc(referenced_keys, grace_seconds=grace_seconds, now=now)


def code_dir_of(staging: Path) -> Path:
    """Where a staging tree `.code-1a2b3c4d` will live once the build is done."""
    return staging.with_name("code")


async def _give(jail: BuildJail | None, tree: Path) -> None:
    """Let the jail's uid write `tree` (the build's own folder)."""
    if jail is not None and jail.uid is not None and jail.gid is not None:
        await in_thread(chown_tree, tree, jail.uid, jail.gid)


async def _take_back(jail: BuildJail | None, tree: Path) -> None:
    """Once nothing of the build runs, give `tree` back to the daemon and take write away from
    everyone else: instances, as the same uid, must never change their own deployment."""
    if jail is not None:
        await in_thread(jail.kill)
        if jail.uid is not None:
            await in_thread(chown_tree, tree, os.geteuid(), os.getegid(), seal=True)


def _stops(jail: BuildJail | None, log: Log) -> Stop | None:
    """Say in the log what the build limits stopped; the first of them, for the error."""
    found = [Stop(BuildLimit(limit), detail) for limit, detail in jail.stopped()] if jail is not None else []
    for stop in found:
        log(f"==> {stop.line()}")
    return found[0] if found else None


@contextlib.asynccontextmanager
async def _limit_time(seconds: float) -> AsyncIterator[None]:
    """The build's time limit, as a BuildFailed that names its flag."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        stop = Stop(BuildLimit.TIME, f"{format_duration(seconds)}: the build was still running")
        raise BuildFailed(f"the build was {stop.line()}", hint=stop.hint()) from exc


def _prefix(python: Path) -> list[Path]:
    """The interpreter's installation, which a jail must show (nothing when it is under /usr)."""
    prefix = python.parent.parent
    return [] if prefix == Path("/usr") or Path("/usr") in prefix.parents else [prefix]


def _remove_deployment_dir(path: Path) -> int:
    freed = remove_tree(path)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the app's folder, once its last deployment is gone
    return freed


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


__all__ = ["BuildOutput", "BuildRequest", "BuildStep", "Builder", "step_line"]
