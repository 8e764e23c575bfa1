"""Safe unpack of a deployment's archive. Refuses, naming the member, anything that could write outside
the tree or fill the disk: absolute paths, `..`, escaping links, devices, too many members or bytes,
NUL bytes and header numbers (PAX size, mtime) no file system could hold.
Blocking: run it in a thread.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from roost.errors import BuildFailed, is_no_space, no_space
from roost.units import human_size

LIMIT_UNPACKED_BYTES = 1024**3
LIMIT_MEMBERS = 100_000
CHUNK = 1024 * 1024
LIMIT_MTIME = 2**40  # seconds either side of 1970: tens of thousands of years, far below any overflow
HEADER_BYTES_PER_MEMBER = 2048  # a header, a long-name record and padding, generously
GZIP_MAGIC = b"\x1f\x8b"
HINT_HOSTILE = "push the app with `roost push`, which packs only plain files, folders and links inside the folder"
HINT_SIZE = "leave large files out with .roostignore (data, media, build output), or raise the builder's limit"


@dataclass(frozen=True, slots=True)
class UnpackStats:
    files: int
    directories: int
    links: int
    unpacked_bytes: int


class _CountingReader(io.RawIOBase):
    """The decompressed stream, cut off past `cap` bytes: no header can be a memory bomb."""

    def __init__(self, source: IO[bytes], cap: int) -> None:
        self._source = source
        self._cap = cap
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        self.count += len(data)
        if self.count > self._cap:
            raise BuildFailed(f"the archive unpacks to more than {human_size(self._cap)}", hint=HINT_SIZE)
        buffer[: len(data)] = data
        return len(data)


def _hostile(name: str, why: str) -> BuildFailed:
    return BuildFailed(f"unsafe archive: {name!r} {why}", hint=HINT_HOSTILE)


def clean_name(name: str) -> str | None:
    """A member's path as safe relative parts joined by '/', None for the root itself.

    Raises BuildFailed for absolute paths and `..` components.
    """
    if name.startswith("/") or os.path.isabs(name):
        raise _hostile(name, "is an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _hostile(name, "climbs out of the app folder with '..'")
    if "\x00" in name:
        raise _hostile(name, "holds a NUL byte")
    return "/".join(parts) or None


def check_link_target(name: str, target: str) -> None:
    """A symlink must be relative and, read from where it lies, stay inside the tree."""
    if not target:
        raise _hostile(name, "is a symlink with no target")
    if "\x00" in target:
        raise _hostile(name, "is a symlink whose target holds a NUL byte")
    if os.path.isabs(target):
        raise _hostile(name, f"is a symlink to the absolute path {target!r}")
    resolved = os.path.normpath(os.path.join(os.path.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise _hostile(name, f"is a symlink to {target!r}, outside the app folder")


def _too_big(name: str, limit_unpacked_bytes: int) -> BuildFailed:
    return BuildFailed(
        f"the archive unpacks to more than {human_size(limit_unpacked_bytes)} (reached at {name!r})", hint=HINT_SIZE
    )


def check_header(name: str, member: tarfile.TarInfo, limit_unpacked_bytes: int) -> None:
    """Header numbers a PAX record can set to anything: a size beyond the limit (the stream would
    be skipped for ever) or below zero, a time no clock can hold (1e300, nan)."""
    if member.size < 0:
        raise _hostile(name, f"declares a negative size ({member.size})")
    if member.size > limit_unpacked_bytes:
        raise _too_big(name, limit_unpacked_bytes)
    mtime = member.mtime
    if not (math.isfinite(mtime) and abs(mtime) <= LIMIT_MTIME):
        raise _hostile(name, f"has the modification time {mtime!r}, which is no real date")


class _Extractor:
    """One archive into one directory; remembers what each path is to refuse tricks."""

    def __init__(self, dest: Path, limit_unpacked_bytes: int) -> None:
        self.dest = dest
        self.limit_unpacked_bytes = limit_unpacked_bytes
        self.kinds: dict[str, str] = {"": "dir"}
        self.explicit: set[str] = set()
        self.unpacked = 0
        self.files = self.directories = self.links = 0

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = clean_name(member.name)
        if name is None:
            return
        if name in self.explicit:
            raise _hostile(name, "appears twice in the archive")
        self.explicit.add(name)
        check_header(name, member, self.limit_unpacked_bytes)
        self._make_parents(name)
        if member.isdir():
            self._add_dir(name)
        elif member.issym():
            self._add_symlink(name, member.linkname)
        elif member.islnk():
            self._add_hardlink(name, member.linkname)
        elif member.isreg() and not member.issparse():
            self._add_file(tar, member, name)
        else:
            raise _hostile(name, f"is a {_kind(member)}, which an app may not ship")

    def _make_parents(self, name: str) -> None:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            kind = self.kinds.get(parent)
            if kind is None:
                (self.dest / parent).mkdir(mode=0o755)
                self.kinds[parent] = "dir"
            elif kind != "dir":
                raise _hostile(name, f"goes through {parent!r}, which is a {kind}, not a folder")

    def _add_dir(self, name: str) -> None:
        kind = self.kinds.get(name)
        if kind is None:
            (self.dest / name).mkdir(mode=0o755)
            self.kinds[name] = "dir"
        elif kind != "dir":
            raise _hostile(name, "appears twice in the archive")
        self.directories += 1

    def _add_symlink(self, name: str, target: str) -> None:
        self._check_free(name)
        check_link_target(name, target)
        os.symlink(target, self.dest / name)
        self.kinds[name] = "symlink"
        self.links += 1

    def _add_hardlink(self, name: str, target: str) -> None:
        self._check_free(name)
        try:
            source = clean_name(target)
        except BuildFailed:
            source = None  # absolute or climbing: refused below, naming this member
        if source is None or self.kinds.get(source) != "file":
            raise _hostile(name, f"is a hard link to {target!r}, which is not a file earlier in the archive")
        os.link(self.dest / source, self.dest / name, follow_symlinks=False)
        self.kinds[name] = "file"
        self.links += 1

    def _add_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> None:
        self._check_free(name)
        if self.unpacked + member.size > self.limit_unpacked_bytes:
            raise _too_big(name, self.limit_unpacked_bytes)
        source = tar.extractfile(member)
        if source is None:
            raise _hostile(name, "has no readable content")
        mode = 0o755 if member.mode & 0o111 else 0o644
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with source, open(os.open(self.dest / name, flags, mode), "wb") as target:
            while chunk := source.read(CHUNK):
                self.unpacked += len(chunk)
                if self.unpacked > self.limit_unpacked_bytes:
                    raise _too_big(name, self.limit_unpacked_bytes)
                target.write(chunk)
            os.fchmod(target.fileno(), mode)
        os.utime(self.dest / name, (member.mtime, member.mtime), follow_symlinks=False)
        self.kinds[name] = "file"
        self.files += 1

    def _check_free(self, name: str) -> None:
        if name in self.kinds:
            raise _hostile(name, "appears twice in the archive")

    def check_links_stay_inside(self) -> None:
        """Chains of links can leave the tree even when each link alone does not: resolve them all."""
        root = os.path.realpath(self.dest)
        for name, kind in sorted(self.kinds.items()):
            if kind != "symlink":
                continue
            resolved = os.path.realpath(self.dest / name)
            if os.path.commonpath([root, resolved]) != root:
                raise _hostile(name, "is a symlink that, through other links, leads outside the app folder")


def _kind(member: tarfile.TarInfo) -> str:
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "fifo"
    if member.issparse():
        return "sparse file"
    return f"tar entry of type {member.type!r}"


def _open_stream(archive: Path) -> IO[bytes]:
    """The archive's tar bytes: gunzipped when it starts with gzip's magic."""
    with archive.open("rb") as probe:
        magic = probe.read(len(GZIP_MAGIC))
    if magic == GZIP_MAGIC:
        return cast(IO[bytes], gzip.open(archive, "rb"))
    return archive.open("rb")


def unpack_archive(
    archive: Path,
    dest: Path,
    *,
    limit_unpacked_bytes: int = LIMIT_UNPACKED_BYTES,
    limit_members: int = LIMIT_MEMBERS,
) -> UnpackStats:
    """Unpack a `.tar.gz` (or plain `.tar`) into `dest`, which must not exist yet.

    Raises BuildFailed, naming the member, for anything unsafe; then `dest` is
    removed again, so a failure leaves nothing behind.
    """
    dest.mkdir(mode=0o755)
    try:
        return _unpack(archive, dest, limit_unpacked_bytes, limit_members)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _unpack(archive: Path, dest: Path, limit_unpacked_bytes: int, limit_members: int) -> UnpackStats:
    extractor = _Extractor(dest, limit_unpacked_bytes)
    cap = limit_unpacked_bytes + HEADER_BYTES_PER_MEMBER * limit_members
    try:
        with (
            _open_stream(archive) as stream,
            _CountingReader(stream, cap) as counted,
            tarfile.open(fileobj=cast(IO[bytes], counted), mode="r|") as tar,
        ):
            for count, member in enumerate(tar, start=1):
                if count > limit_members:
                    raise BuildFailed(
                        f"the archive holds more than {limit_members} entries (stopped at {member.name!r})",
                        hint="leave generated files out with .roostignore",
                    )
                extractor.add(tar, member)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BuildFailed(f"the archive is not a valid .tar.gz: {exc}", hint="run `roost push` again") from exc
    except OSError as exc:
        if is_no_space(exc):
            raise no_space(dest.parent) from exc
        raise BuildFailed(
            f"cannot unpack the archive: {exc}", hint="check the free space under the Roost home"
        ) from exc
    extractor.check_links_stay_inside()
    return UnpackStats(extractor.files, extractor.directories, extractor.links, extractor.unpacked)


__all__ = ["LIMIT_MEMBERS", "LIMIT_UNPACKED_BYTES", "UnpackStats", "check_link_target", "clean_name", "unpack_archive"]
