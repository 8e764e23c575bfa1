"""Pack an app folder into a deterministic `.tar.gz` for `roost push`: the ignore rules,
and byte-for-byte stability (the same tree always packs to the same digest). Never talks to the daemon.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

from roost.errors import UsageError

FIXED_MTIME = 315532800  # 1980-01-01T00:00:00Z, the usual reproducible-build epoch
COMPRESS_LEVEL = 6
ALWAYS_LEFT_OUT_NAMES = frozenset({".git", "__pycache__", ".venv", "venv", ".roost-home"})
ALWAYS_LEFT_OUT_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True, slots=True)
class PackResult:
    """The archive written: where, its `sha256:<hex>` digest, and what went in."""

    path: Path
    digest: str
    size: int
    files: int
    unpacked_size: int


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str  # posix path relative to the app root
    path: Path
    kind: str  # "dir", "file" or "symlink"


def digest_file(path: Path) -> str:
    """`sha256:<64 hex>` of a file's bytes, read in chunks."""
    with path.open("rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


class _IgnoreRules:
    """`.gitignore` (at any depth) and `.roostignore` (at the root), with gitignore semantics.

    A deeper `.gitignore` overrides a shallower one, and `.roostignore` overrides
    the root `.gitignore`, as Git orders its own sources.
    """

    def __init__(self, root: Path) -> None:
        self._specs: dict[str, pathspec.GitIgnoreSpec] = {}
        lines = [*_read_lines(root / ".gitignore"), *_read_lines(root / ".roostignore")]
        if lines:
            self._specs[""] = pathspec.GitIgnoreSpec.from_lines(lines)

    def enter(self, rel_dir: str, directory: Path) -> None:
        """Load the `.gitignore` of a directory the walk goes into."""
        if rel_dir and (directory / ".gitignore").is_file():
            self._specs[rel_dir] = pathspec.GitIgnoreSpec.from_lines(_read_lines(directory / ".gitignore"))

    def is_ignored(self, name: str, is_dir: bool) -> bool:
        parts = PurePosixPath(name).parts
        decided: bool | None = None
        for depth in range(len(parts)):
            base = "/".join(parts[:depth])
            spec = self._specs.get(base)
            if spec is None:
                continue
            relative = "/".join(parts[depth:]) + ("/" if is_dir else "")
            include = spec.check_file(relative).include
            if include is not None:
                decided = include
        return bool(decided)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", hint="check the file's permissions") from exc


def is_always_left_out(path: Path, is_dir: bool) -> bool:
    """Version control, bytecode, virtual environments and Roost's own home never ship,
    whether they are folders or links to folders elsewhere."""
    if path.name in ALWAYS_LEFT_OUT_NAMES or path.name.endswith(ALWAYS_LEFT_OUT_SUFFIXES):
        return True
    return is_dir and (path / "pyvenv.cfg").exists()


def _check_symlink(path: Path, name: str) -> None:
    target = os.readlink(path)
    inside = os.path.normpath(os.path.join(os.path.dirname(name), target))
    if os.path.isabs(target) or inside == ".." or inside.startswith("../"):
        raise UsageError(
            f"{name} is a symlink to {target}, outside the app folder",
            hint="replace it with a copy or a relative link inside the folder, or list it in .roostignore",
        )


def _walk(root: Path, skip: Path | None) -> Iterator[_Entry]:
    """Every entry to pack, in no particular order; directories are pruned when ignored."""
    rules = _IgnoreRules(root)
    pending = [("", root)]
    while pending:
        rel_dir, directory = pending.pop()
        rules.enter(rel_dir, directory)
        try:
            with os.scandir(directory) as listing:
                children = list(listing)
        except OSError as exc:
            raise UsageError(f"cannot list {directory}: {exc.strerror}", hint="check its permissions") from exc
        for child in children:
            path = Path(child.path)
            name = f"{rel_dir}/{child.name}" if rel_dir else child.name
            is_dir = child.is_dir(follow_symlinks=False)
            if path == skip or is_always_left_out(path, is_dir) or rules.is_ignored(name, is_dir):
                continue
            if child.is_symlink():
                _check_symlink(path, name)
                yield _Entry(name, path, "symlink")
            elif is_dir:
                yield _Entry(name, path, "dir")
                pending.append((name, path))
            elif child.is_file(follow_symlinks=False):
                yield _Entry(name, path, "file")
            # sockets, fifos and devices are not part of an app: left out


def _tar_info(entry: _Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.name)
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif entry.kind == "symlink":
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, os.readlink(entry.path)
    else:
        found = entry.path.stat()
        info.type, info.size = tarfile.REGTYPE, found.st_size
        info.mode = 0o755 if found.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) else 0o644
    return info


def _write_archive(entries: list[_Entry], dest: Path) -> tuple[int, int]:
    """Write the tar.gz; returns (files, unpacked bytes)."""
    files = unpacked = 0
    with (
        dest.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=COMPRESS_LEVEL) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for entry in entries:
            info = _tar_info(entry)
            if entry.kind != "file":
                tar.addfile(info)
                continue
            with entry.path.open("rb") as handle:
                tar.addfile(info, _exact(handle, info.size, entry.name))
            files += 1
            unpacked += info.size
    return files, unpacked


def _exact(handle: io.BufferedReader, size: int, name: str) -> io.BufferedReader:
    """The file, checked to still have the size its header announces."""
    if os.fstat(handle.fileno()).st_size != size:
        raise UsageError(f"{name} changed while it was being packed", hint="run `roost push` again")
    return handle


def pack_app(app_dir: Path, dest: Path) -> PackResult:
    """Pack `app_dir` into a deterministic `.tar.gz` at `dest`.

    Entries are sorted, with a fixed mtime, owner 0 and modes 0o755/0o644, so
    the same tree gives the same digest whatever its mtimes or owner. Raises
    UsageError when the folder is missing, empty after the ignore rules, or
    holds a symlink that leaves it. Blocking: the CLI calls it directly.

    Example::

        packed = pack_app(Path("."), Path(scratch) / "app.tar.gz")
        print(packed.digest, packed.files)
    """
    if not app_dir.is_dir():
        raise UsageError(f"{app_dir} is not a folder", hint="give the folder that holds your app's code")
    root = app_dir.resolve()
    entries = sorted(_walk(root, dest.resolve()), key=lambda entry: entry.name)
    if not any(entry.kind != "dir" for entry in entries):
        raise UsageError(
            f"{app_dir} has nothing to push",
            hint="add your app's code there, or check that .gitignore and .roostignore do not leave everything out",
        )
    try:
        files, unpacked = _write_archive(entries, dest)
    except OSError as exc:
        dest.unlink(missing_ok=True)
        where = exc.filename or dest
        raise UsageError(
            f"cannot pack {where}: {exc.strerror or exc}", hint="check its permissions and free space"
        ) from exc
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return PackResult(
        path=dest, digest=digest_file(dest), size=dest.stat().st_size, files=files, unpacked_size=unpacked
    )


__all__ = ["PackResult", "digest_file", "is_always_left_out", "pack_app"]
