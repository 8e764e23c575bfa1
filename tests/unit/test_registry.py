"""Registry: atomic, verified writes at content addresses; strict digests; garbage collection."""

import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from roost.errors import LimitExceeded, NotFound, UsageError
from roost.registry import Registry


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks_of(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def failing_after(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    raise ConnectionResetError("client went away")


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "blobs")


async def test_a_blob_lands_at_its_content_address(registry: Registry) -> None:
    data = b"hello " * 500_000  # spans several flushes
    digest = digest_of(data)
    path = await registry.put(digest, chunks_of([data[:1000], data[1000:2_000_000], data[2_000_000:], b""]))
    hex_digest = digest.removeprefix("sha256:")
    assert path == registry.root / "sha256" / hex_digest[:2] / hex_digest
    assert path.read_bytes() == data
    assert registry.has(digest)
    assert registry.path(digest) == path
    assert leftovers(registry.root) == [path]


async def test_putting_the_same_blob_twice_is_harmless(registry: Registry) -> None:
    digest = digest_of(b"abc")
    first = await registry.put(digest, chunks_of([b"abc"]))
    second = await registry.put(digest, chunks_of([b"a", b"bc"]))
    assert first == second and second.read_bytes() == b"abc"


async def test_a_wrong_digest_keeps_nothing(registry: Registry) -> None:
    announced = digest_of(b"what the client meant")
    with pytest.raises(UsageError) as caught:
        await registry.put(announced, chunks_of([b"what arrived"]))
    assert announced in caught.value.message
    assert digest_of(b"what arrived") in caught.value.message
    assert "roost push" in caught.value.hint
    assert not registry.has(announced)
    assert leftovers(registry.root) == []


async def test_an_upload_cut_short_keeps_nothing(registry: Registry) -> None:
    data = b"x" * 3_000_000
    with pytest.raises(ConnectionResetError):
        await registry.put(digest_of(data), failing_after([data[:2_000_000]]))
    assert leftovers(registry.root) == []


async def test_a_blob_over_the_limit_is_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "blobs", limit_blob_bytes=10)
    with pytest.raises(LimitExceeded):
        await registry.put(digest_of(b"y" * 11), chunks_of([b"y" * 6, b"y" * 5]))
    assert leftovers(registry.root) == []


async def test_put_file(registry: Registry, tmp_path: Path) -> None:
    source = tmp_path / "archive.tar.gz"
    source.write_bytes(b"z" * 2_500_000)
    digest = digest_of(source.read_bytes())
    assert (await registry.put_file(digest, source)).read_bytes() == source.read_bytes()


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "sha256:",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "g" * 64,
        "md5:" + "a" * 32,
        "a" * 64,
        "sha256:../../../../etc/passwd",
        "sha256:" + "a" * 64 + "/../x",
        "sha256:" + "a" * 64 + "\n",
        " sha256:" + "a" * 64,
    ],
)
async def test_malformed_digests_are_refused(registry: Registry, digest: str) -> None:
    with pytest.raises(UsageError, match="not a valid digest"):
        registry.has(digest)
    with pytest.raises(UsageError):
        registry.path(digest)
    with pytest.raises(UsageError):
        await registry.put(digest, chunks_of([b"x"]))
    assert leftovers(registry.root) == []


def test_a_missing_blob_is_not_found(registry: Registry) -> None:
    digest = digest_of(b"never stored")
    assert not registry.has(digest)
    with pytest.raises(NotFound):
        registry.path(digest)


async def test_gc_removes_unreferenced_blobs_and_keeps_referenced_ones(registry: Registry) -> None:
    kept, dropped = digest_of(b"kept"), digest_of(b"dropped!")
    await registry.put(kept, chunks_of([b"kept"]))
    await registry.put(dropped, chunks_of([b"dropped!"]))
    assert await registry.gc({kept}) == [], "blobs uploaded in the last hour wait for their deployment"
    freed = await registry.gc({kept}, now=time.time() + 7200)
    assert freed == [(dropped, len(b"dropped!"))]
    assert registry.has(kept) and not registry.has(dropped)
    assert await registry.gc({kept}, now=time.time() + 7200) == []


async def test_gc_removes_stale_temporary_files(registry: Registry) -> None:
    temp = registry.root / "tmp"
    temp.mkdir(parents=True)
    stale, fresh = temp / "old.part", temp / "new.part"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"under way")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    await registry.gc(set())
    assert not stale.exists() and fresh.exists()
