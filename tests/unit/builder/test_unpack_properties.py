"""Property tests of the unpacker: any archive, however odd its members, names, link targets and
PAX records, either unpacks inside the target or is refused with BuildFailed; never another
exception, never a write (or a hard link) outside the target."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from roost.builder import unpack_archive
from roost.errors import BuildFailed

ABSOLUTE = "@root@"  # replaced by the test's root folder: absolute names aim at a place the test watches
LIMIT_BYTES = 64 * 1024
LIMIT_MEMBERS = 12
TYPES = [
    tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
    tarfile.BLKTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE, b"x", b"Z",
]  # fmt: skip
PAX_KEYS = ["mtime", "atime", "size", "linkpath", "path", "uid", "gid", "uname", "comment", "hdrcharset"]
PAX_NUMBERS = ["1e300", "-1e300", "nan", "inf", "-1", "0", "1.5", str(2**64), str(10**20), "abc", ""]

segment = st.one_of(
    st.sampled_from([".", "..", "", "a", "b", "sub", "link", "x\x00y", "\udcff", "é", " "]),
    st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=8),
)
relative = st.lists(segment, min_size=1, max_size=4).map("/".join)
path_text = st.one_of(relative, relative.map(lambda rel: f"{ABSOLUTE}/{rel}"), st.just("/etc/passwd"))
pax_value = st.one_of(st.sampled_from(PAX_NUMBERS), path_text, st.text(max_size=10))
member = st.fixed_dictionaries(
    {
        "name": path_text,
        "type": st.sampled_from(TYPES),
        "linkname": path_text,
        "data": st.binary(max_size=64),
        "mode": st.integers(0, 0o7777),
        "mtime": st.one_of(st.integers(0, 2**33 - 1), st.integers(-(2**40), 2**40)),
        "pax": st.dictionaries(st.sampled_from(PAX_KEYS), pax_value, max_size=3),
    }
)


def write_archive(path: Path, members: list[dict[str, object]], root: Path) -> bool:
    """The members as a gzipped PAX tar; False when tarfile itself will not write them."""

    def aim(text: object) -> str:
        return str(text).replace(ABSOLUTE, str(root))

    try:
        with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            for spec in members:
                info = tarfile.TarInfo(aim(spec["name"]))
                info.type, info.linkname = spec["type"], aim(spec["linkname"])  # type: ignore[assignment]
                info.mode, info.mtime = spec["mode"], spec["mtime"]  # type: ignore[assignment]
                info.pax_headers = {k: aim(v) for k, v in spec["pax"].items()}  # type: ignore[attr-defined]
                data = spec["data"] if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else b""
                info.size = len(data)  # type: ignore[arg-type]
                tar.addfile(info, io.BytesIO(data) if data else None)  # type: ignore[arg-type]
    except (ValueError, UnicodeError, OverflowError, tarfile.TarError):
        return False
    return True


def everything_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def workspace() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="roost-unpack-properties-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=st.lists(member, max_size=6))
@example(
    members=[{"name": "old.py", "type": tarfile.REGTYPE, "linkname": "", "data": b"x", "mode": 0o644,
              "mtime": 0, "pax": {"mtime": "1e300"}}]
)  # fmt: skip
@example(
    members=[{"name": "nul", "type": tarfile.SYMTYPE, "linkname": "", "data": b"", "mode": 0o644,
              "mtime": 0, "pax": {"linkpath": "a\x00b"}}]
)  # fmt: skip
@example(
    members=[{"name": "hl", "type": tarfile.LNKTYPE, "linkname": f"{ABSOLUTE}/secret", "data": b"", "mode": 0o644,
              "mtime": 0, "pax": {}}]
)  # fmt: skip
def test_any_archive_unpacks_inside_or_is_refused(workspace: Path, members: list[dict[str, object]]) -> None:
    root = Path(tempfile.mkdtemp(dir=workspace))
    try:
        check_one(root, members)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def check_one(root: Path, members: list[dict[str, object]]) -> None:
    secret = root / "secret"
    secret.write_text("not the app's")
    source = root / "app.tar.gz"
    assume(write_archive(source, members, root))
    dest = root / "a" / "b" / "code"
    dest.parent.mkdir(parents=True)
    before = everything_under(root)
    try:
        unpack_archive(source, dest, limit_unpacked_bytes=LIMIT_BYTES, limit_members=LIMIT_MEMBERS)
    except BuildFailed as refused:
        assert refused.hint
        assert not dest.exists(), "a refused archive leaves nothing behind"
    else:
        inside = os.path.realpath(dest)
        for path in dest.rglob("*"):
            assert os.path.commonpath([inside, os.path.realpath(path)]) == inside, f"{path} leads outside"
    assert {p for p in everything_under(root) if not p.startswith("a/b/code")} == before
    assert secret.stat().st_nlink == 1, "a file outside was hard-linked into the app"
    assert secret.read_text() == "not the app's"
