"""Content-addressed blobs (`<root>/sha256/<2 hex>/<hex>`), collected when no deployment needs them.
Uploads are fsynced, verified against their digest and only then renamed into place: a half-written
or mismatched blob is never visible. Imports only the leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from roost.errors import LimitExceeded, NotFound, UsageError, is_no_space, no_space

DIGEST_PATTERN = r"^sha256:([0-9a-f]{64})$"  # the admin API's schema carries it too
DIGEST_RE = re.compile(DIGEST_PATTERN)
DIGEST_FORM = "'sha256:' followed by 64 lowercase hex digits"
LIMIT_BLOB_BYTES = 2 * 1024**3
FLUSH_BYTES = 1024 * 1024
STALE_TEMP_SECONDS = 3600.0
GRACE_SECONDS = 3600.0
TEMP_SUFFIX = ".part"


def parse_digest(digest: str) -> str:
    """The hex part of a valid digest; UsageError for anything else (no path tricks get through)."""
    match = DIGEST_RE.fullmatch(digest)
    if match is None:
        raise UsageError(f"{digest!r} is not a valid digest", hint=f"a digest is {DIGEST_FORM}")
    return match.group(1)


def is_valid_digest(digest: str) -> bool:
    return DIGEST_RE.fullmatch(digest) is not None


class Registry:
    """The blob store under `root`.

    Example::

        registry = Registry(home / "blobs")
        if not registry.has(digest):
            await registry.put(digest, request.stream())
        archive = registry.path(digest)
    """

    def __init__(self, root: Path, *, limit_blob_bytes: int = LIMIT_BLOB_BYTES) -> None:
        self.root = root
        self.limit_blob_bytes = limit_blob_bytes
        self._blobs = root / "sha256"
        self._temp = root / "tmp"

    def _blob_path(self, digest: str) -> Path:
        hex_digest = parse_digest(digest)
        return self._blobs / hex_digest[:2] / hex_digest

    def has(self, digest: str) -> bool:
        """True when the blob is stored. Raises UsageError for a malformed digest."""
        return self._blob_path(digest).is_file()

    def path(self, digest: str) -> Path:
        """Where the blob lies. Raises NotFound when it is not stored."""
        found = self._blob_path(digest)
        if not found.is_file():
            raise NotFound(f"the archive {digest} is not in the registry", hint="run `roost push` again to upload it")
        return found

    async def put(self, digest: str, chunks: AsyncIterator[bytes]) -> Path:
        """Store the bytes of `chunks` as `digest` and return the blob's path.

        Raises UsageError when the bytes do not hash to `digest` (nothing is
        kept), LimitExceeded past `limit_blob_bytes` and NoSpace when the disk
        fills (nothing is kept either). Storing a blob that exists already is harmless.
        """
        final = self._blob_path(digest)
        try:
            handle, temp = await asyncio.to_thread(self._open_temp, final.name)
        except OSError as exc:
            if is_no_space(exc):
                raise no_space(self.root) from exc
            raise
        hasher = hashlib.sha256()
        try:
            await self._receive(chunks, handle, hasher, digest)
            await asyncio.to_thread(_seal, handle)
            _check_digest(hasher, digest)
            await asyncio.to_thread(_publish, temp, final)
        except BaseException as exc:
            await asyncio.to_thread(_discard, handle, temp)
            if is_no_space(exc):
                raise no_space(self.root) from exc
            raise
        return final

    async def put_file(self, digest: str, src: Path) -> Path:
        """`put` from a local file."""
        parse_digest(digest)
        async with contextlib.aclosing(_file_chunks(src)) as chunks:
            return await self.put(digest, chunks)

    async def _receive(
        self, chunks: AsyncIterator[bytes], handle: BinaryIO, hasher: hashlib._Hash, digest: str
    ) -> None:
        buffer = bytearray()
        received = 0
        async for chunk in chunks:
            received += len(chunk)
            if received > self.limit_blob_bytes:
                raise LimitExceeded(
                    f"the archive {digest[:19]}… is larger than {self.limit_blob_bytes} bytes",
                    hint="leave large files out with .roostignore, or raise the daemon's blob limit",
                )
            buffer += chunk
            if len(buffer) >= FLUSH_BYTES:
                await asyncio.to_thread(_write, handle, hasher, bytes(buffer))
                buffer.clear()
        await asyncio.to_thread(_write, handle, hasher, bytes(buffer))

    def _open_temp(self, name: str) -> tuple[BinaryIO, Path]:
        # owner-only: uploads are apps' source code, which no other app's uid may read
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._temp.mkdir(mode=0o700, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self._temp, prefix=f"{name[:16]}-", suffix=TEMP_SUFFIX)
        return os.fdopen(fd, "wb"), Path(temp)

    async def gc(
        self, referenced: set[str], *, grace_seconds: float = GRACE_SECONDS, now: float | None = None
    ) -> list[tuple[str, int]]:
        """Remove the blobs no deployment references; returns (digest, bytes) of each one removed.

        Blobs written in the last `grace_seconds` are kept, so an archive that
        was just uploaded survives until its deployment is recorded. Temporary
        files of uploads idle for an hour are removed too (not listed).
        """
        moment = time.time() if now is None else now
        return await asyncio.to_thread(self._collect, referenced, moment - grace_seconds, moment)

    def _collect(self, referenced: set[str], keep_after: float, now: float) -> list[tuple[str, int]]:
        freed: list[tuple[str, int]] = []
        for blob in sorted(self._blobs.glob("??/*")):
            digest = f"sha256:{blob.name}"
            if not is_valid_digest(digest) or digest in referenced:
                continue
            with contextlib.suppress(FileNotFoundError):
                info = blob.stat()
                if info.st_mtime <= keep_after:
                    blob.unlink()
                    freed.append((digest, info.st_size))
        for temp in self._temp.glob(f"*{TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                if temp.stat().st_mtime <= now - STALE_TEMP_SECONDS:
                    temp.unlink()
        return freed


def _write(handle: BinaryIO, hasher: hashlib._Hash, data: bytes) -> None:
    if data:
        handle.write(data)
        hasher.update(data)


def _seal(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _check_digest(hasher: hashlib._Hash, digest: str) -> None:
    actual = f"sha256:{hasher.hexdigest()}"
    if actual != digest:
        raise UsageError(
            f"the upload does not match its digest: announced {digest}, received {actual}",
            hint="the archive changed or was cut in transit; run `roost push` again",
        )


def _publish(temp: Path, final: Path) -> None:
    """Rename into place, then fsync the directory so the rename survives a crash."""
    final.parent.parent.mkdir(mode=0o700, exist_ok=True)
    final.parent.mkdir(mode=0o700, exist_ok=True)
    os.chmod(temp, 0o600)  # mkstemp's mode already; said here so a blob is never more open
    os.replace(temp, final)
    fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(handle: BinaryIO, temp: Path) -> None:
    """Close and remove a failed upload; closing flushes, which fails again on a full disk."""
    try:
        with contextlib.suppress(OSError):
            handle.close()
    finally:
        temp.unlink(missing_ok=True)


async def _file_chunks(src: Path) -> AsyncGenerator[bytes, None]:
    handle = await asyncio.to_thread(src.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, FLUSH_BYTES):
            yield chunk
    finally:
        handle.close()


__all__ = ["DIGEST_FORM", "Registry", "is_valid_digest", "parse_digest"]
