"""The uv cache: one shared cache written only by trusted steps, and per-app views for the steps
that run a package's own code. Owns which cache and which flags each uv step gets, and the
making of views; never runs uv (install.py does) and never decides a build's uid.

Trusted step: `uv pip install --no-build` (wheels only: no package code runs, no bytecode
compiled by a venv's python) with the shared cache, no configuration files read and no local
files named, as the daemon. When it succeeds nothing untrusted touches uv at all.

Untrusted step (some sdist must be built): the app's own view `<views>/<app>`, a copy of the
shared cache made of hard links to its files, which stay owned by the daemon and read-only;
the directories and uv's marker files are the app's. uv in the view can add and replace
entries of the view, never change a shared file (the kernel refuses writes to a file one does
not own, and `fs.protected_hardlinks` a new link to it); a view is made once per app (and
again when its owner changes) and keeps what that app's builds add, sdists built included.
Blocking file work: call `view` in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
import tomllib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from roost.builder.fs import remove_tree

log = logging.getLogger("roost.builder")
SOURCE_KEYS = frozenset(
    {"index", "index-url", "extra-index-url", "find-links", "no-index", "sources", "index-strategy", "pip"}
)  # [tool.uv] keys that change where a package comes from
MARKER_DEPTH = 2  # uv opens its markers (CACHEDIR.TAG, .lock, <bucket>/.git) for writing: the view's own copies
NOT_FROM_INDEX = ("@", "/", "\\", ":")  # a direct URL, a path, a scheme: never in a name, version or marker


@dataclass(frozen=True, slots=True)
class CacheView:
    """The cache an untrusted uv step uses. `warm`: it existed before this build (an earlier build
    of the app made or used it), so a locked install may try without the network first.

    Example::

        view = cache.view("shop", owner=200001)
        env = {**toolchain_env, **view.environ()}    # and bind `view.path` writable in the sandbox
    """

    path: Path
    warm: bool

    def environ(self) -> dict[str, str]:
        """uv's settings for the view: its path, and copies rather than hard links into the venv
        (a link to a shared file is refused to an app's uid anyway)."""
        return {"UV_CACHE_DIR": str(self.path), "UV_LINK_MODE": "copy"}

    def binds(self) -> tuple[Path, ...]:
        """What the build's filesystem view must mount writable for uv (the shared cache: nothing)."""
        return (self.path,)


class UvCache:
    """The shared cache `shared` and the apps' views under `views`.

    Example::

        cache = UvCache(home / "cache" / "uv", home / "cache" / "uv-views")
        argv = cache.trusted_install(uv, venv_python, ["flask==3.1"], offline=False)
        env = {**env, **cache.trusted_environ()}
    """

    def __init__(self, shared: Path, views: Path) -> None:
        self.shared = shared
        self.views = views

    def trusted_environ(self) -> dict[str, str]:
        """uv's settings for trusted steps: the shared cache, no pyproject.toml or uv.toml read
        (an app's `[tool.uv]` could point the daemon at any URL)."""
        return {"UV_CACHE_DIR": str(self.shared), "UV_NO_CONFIG": "1", "HOME": str(self.shared)}

    def trusted_install(self, uv: str, python: Path, packages: Sequence[str], *, offline: bool) -> list[str]:
        """`uv pip install` of wheels only, no bytecode: nothing of a package runs."""
        argv = [uv, "pip", "install", "--python", str(python), "--no-build", "--no-config"]
        return [*argv, *(["--offline"] if offline else []), *packages]

    def untrusted_install(self, uv: str, python: Path, packages: Sequence[str], *, offline: bool) -> list[str]:
        """`uv pip install` that may build sdists and compiles bytecode: run it with a view."""
        argv = [uv, "pip", "install", "--python", str(python), "--compile-bytecode"]
        return [*argv, *(["--offline"] if offline else []), *packages]

    def view(self, app: str, owner: int | None = None, group: int | None = None) -> CacheView:
        """The app's view, made now from the shared cache if missing or not `owner`'s.

        `owner`/`group` (the build's uid and gid; None: the daemon's) own the view's directories
        and markers. Blocking."""
        path = self.views / app
        expected = os.geteuid() if owner is None else owner
        with contextlib.suppress(FileNotFoundError):
            if path.lstat().st_uid == expected and path.is_dir() and not path.is_symlink():
                return CacheView(path, warm=True)
            remove_tree(path)
        self.views.mkdir(parents=True, exist_ok=True)
        os.chmod(self.views, 0o711)  # noqa: S103 - an app reaches its own view by name, never lists the others
        staging = self.views / f".seed-{app}-{secrets.token_hex(4)}"
        try:
            _seed(self.shared, staging)
            if owner is not None:
                _hand_over(staging, owner, expected if group is None else group)
            os.rename(staging, path)
        except OSError as exc:
            remove_tree(staging)
            if not path.is_dir():
                raise
            log.info("cache view of %s made by a concurrent build (%s): using it", app, exc.strerror)
        except BaseException:
            remove_tree(staging)
            raise
        return CacheView(path, warm=False)

    def prune_views(self, apps: Collection[str]) -> list[tuple[str, int]]:
        """Remove the views of apps not in `apps` (removed since their builds); (app, bytes freed:
        the files only the view held, such as the sdists it built) of each. A staging folder
        (".seed-…") belongs to a build under way and is left alone. Blocking."""
        removed: list[tuple[str, int]] = []
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.scandir(self.views), key=lambda e: e.name):
                if entry.name.startswith(".") or entry.name in apps:
                    continue
                freed = _own_bytes(Path(entry.path))
                remove_tree(Path(entry.path))
                removed.append((entry.name, freed))
        return removed


def _own_bytes(tree: Path) -> int:
    """The bytes of the regular files under `tree` that no other link keeps (freed by removing it)."""
    total = 0
    for directory, _, filenames in os.walk(tree):
        for name in filenames:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(directory, name))
                if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                    total += info.st_size
    return total


def admits_trusted(requirements: Iterable[str]) -> bool:
    """Whether the trusted step may install these requirement lines (or requirement strings):
    only names and versions from the index. An option (`-r`, `-e`, `--index-url`, ...), a path,
    a `file:` or VCS URL or a direct `name @ url` goes to the untrusted step: the daemon must
    not read a file or fetch a URL an app chose.

    >>> admits_trusted(["flask==3.1.0", "  # a comment", "requests[socks]>=2 ; python_version>'3'"])
    True
    >>> [admits_trusted([line]) for line in ["-r other.txt", "./pkg", "x @ https://e.x/x.whl", "/etc/x.whl"]]
    [False, False, False, False]
    """
    return all(_is_from_index(line) for line in requirement_lines(requirements))


def has_own_sources(pyproject: str | None, has_uv_toml: bool) -> bool:
    r"""Whether the app tells uv where packages come from (a `uv.toml`, or `[tool.uv]` keys on
    indexes and sources in pyproject.toml): the trusted step reads no configuration, so it would
    take those packages from the default index instead. Such an app goes to the untrusted step.

    >>> has_own_sources('[tool.uv]\ndev-dependencies = ["pytest"]\n', False)
    False
    >>> has_own_sources('[[tool.uv.index]]\nname = "corp"\nurl = "https://pkgs.corp/simple"\n', False)
    True
    """
    if has_uv_toml:
        return True
    try:
        settings = tomllib.loads(pyproject or "").get("tool", {}).get("uv", {})
    except (tomllib.TOMLDecodeError, AttributeError):
        return True  # unreadable: let uv itself decide, where a mistake costs the app only
    return isinstance(settings, dict) and bool(set(settings) & SOURCE_KEYS)


def requirement_lines(lines: Iterable[str]) -> list[str]:
    """The requirements of a requirements file's lines: comments and blank lines dropped."""
    found = [line.split(" #", 1)[0].strip() for line in lines]
    return [line for line in found if line and not line.startswith("#")]


def _is_from_index(requirement: str) -> bool:
    return not requirement.startswith(("-", ".", "~")) and not any(c in requirement for c in NOT_FROM_INDEX)


def views_dir(shared: Path, home: Path, home_key: str) -> Path:
    """Where the apps' views of `shared` live: under `home` when both are on one filesystem, else
    beside `shared` (one folder per home), since a view is made of hard links to its files.
    Blocking (stat, mkdir)."""
    inside = home / "cache" / "uv-views"
    shared.mkdir(parents=True, exist_ok=True)
    inside.parent.mkdir(parents=True, exist_ok=True)
    if os.stat(shared).st_dev == os.stat(inside.parent).st_dev:
        return inside
    return shared.with_name(f"{shared.name}-views") / home_key


def _seed(shared: Path, staging: Path) -> None:
    """A tree at `staging` mirroring `shared`: directories made, symlinks (uv points a wheel's entry
    at its unpacked archive with a relative one) made again, files hard-linked, markers copied.
    Files that vanish mid-walk (uv replacing them) are skipped."""
    staging.mkdir(mode=0o700)
    for directory, dirnames, filenames in os.walk(shared):
        relative = Path(directory).relative_to(shared)
        target = staging / relative
        for name in [*dirnames, *filenames]:
            with contextlib.suppress(FileNotFoundError):
                _place(Path(directory) / name, target / name, len(relative.parts) + 1)


def _place(source: Path, target: Path, depth: int) -> None:
    info = source.lstat()
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISDIR(info.st_mode):
        target.mkdir(mode=0o755)
    elif not stat.S_ISREG(info.st_mode):
        return
    elif depth <= MARKER_DEPTH or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        target.write_bytes(source.read_bytes())  # the view's own copy: a shared-writable file is never linked
    else:
        try:
            os.link(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            target.write_bytes(source.read_bytes())  # another filesystem: the view's own copy


def _hand_over(staging: Path, owner: int, group: int) -> None:
    """Give the directories and copied markers to the build's uid, deepest first, so no path is
    the app's before everything under it is done; linked files keep the daemon as owner."""
    for directory, _dirnames, filenames in os.walk(staging, topdown=False):
        for name in filenames:
            path = Path(directory) / name
            if path.lstat().st_nlink == 1:
                os.lchown(path, owner, group)
        os.lchown(directory, owner, group)


__all__ = ["CacheView", "UvCache", "admits_trusted", "has_own_sources", "requirement_lines", "views_dir"]
