"""Safe unpack: every hostile archive is refused with its member named; good ones unpack whole."""

import io
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from roost.builder import unpack_archive
from roost.errors import BuildFailed
from roost.pack import pack_app

KB = 1024


@dataclass
class Member:
    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644
    pax: dict[str, str] = field(default_factory=dict)  # PAX records, which override the header's fields


def archive(path: Path, members: list[Member], gzipped: bool = True) -> Path:
    with tarfile.open(path, "w:gz" if gzipped else "w:", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type, info.linkname, info.mode = member.type, member.linkname, member.mode
            info.pax_headers = dict(member.pax)
            info.size = len(member.data) if member.type == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(member.data) if info.size else None)
    return path


def reg(name: str, data: bytes = b"data", mode: int = 0o644) -> Member:
    return Member(name, data=data, mode=mode)


def sym(name: str, target: str) -> Member:
    return Member(name, tarfile.SYMTYPE, linkname=target)


def hard(name: str, target: str) -> Member:
    return Member(name, tarfile.LNKTYPE, linkname=target)


HOSTILE: dict[str, tuple[list[Member], str]] = {
    "absolute path": ([reg("/tmp/roost-evil")], "/tmp/roost-evil"),
    "dot-dot": ([reg("../x")], "../x"),
    "dot-dot inside": ([reg("a/../../x")], "a/../../x"),
    "symlink to /etc/passwd": ([sym("passwd", "/etc/passwd")], "passwd"),
    "symlink up with ..": ([reg("sub/ok"), sym("sub/link", "../../outside")], "sub/link"),
    "symlink chain out": (
        [Member("sub/deep", tarfile.DIRTYPE), sym("sub/deep/l2", "../.."), sym("l1", "sub/deep/l2/..")],
        "l1",
    ),
    "write through a symlink": ([Member("real", tarfile.DIRTYPE), sym("link", "real"), reg("link/file")], "link/file"),
    "hardlink outside": ([hard("hl", "/etc/passwd")], "hl"),
    "hardlink up": ([hard("hl", "../x")], "hl"),
    "hardlink to nothing": ([hard("hl", "later"), reg("later")], "hl"),
    "character device": ([Member("tty", tarfile.CHRTYPE)], "tty"),
    "block device": ([Member("sda", tarfile.BLKTYPE)], "sda"),
    "fifo": ([Member("pipe", tarfile.FIFOTYPE)], "pipe"),
    "one file over the size limit": ([reg("small", b"s" * 10), reg("big.bin", b"\0" * (70 * KB))], "big.bin"),
    "many files over the size limit": ([reg(f"part{i}", b"p" * (20 * KB)) for i in range(5)], "part3"),
    "a duplicate member": ([reg("main.py"), reg("main.py", b"other")], "main.py"),
    "too many members": ([reg(f"f{i}") for i in range(12)], "f10"),
    "a PAX mtime no clock holds": ([Member("old.py", data=b"x", pax={"mtime": "1e300"})], "old.py"),
    "a PAX mtime that is not a number": ([Member("nan.py", data=b"x", pax={"mtime": "nan"})], "nan.py"),
    "a symlink target with a NUL byte": ([Member("nul", tarfile.SYMTYPE, pax={"linkpath": "a\x00b"})], "nul"),
    "a PAX size past the limit on a link": (
        [Member("huge", tarfile.SYMTYPE, linkname="x", pax={"size": str(10**20)})],
        "huge",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_archives_are_refused_with_the_member_named(tmp_path: Path, case: str) -> None:
    members, named = HOSTILE[case]
    source = archive(tmp_path / "app.tar.gz", members)
    dest = tmp_path / "code"
    with pytest.raises(BuildFailed) as caught:
        unpack_archive(source, dest, limit_unpacked_bytes=64 * KB, limit_members=10)
    assert named in caught.value.message
    assert caught.value.hint
    assert not dest.exists(), "a refused archive leaves nothing behind"
    assert not (tmp_path / "tmp" / "roost-evil").exists()


def test_a_gzip_bomb_is_cut_off(tmp_path: Path) -> None:
    source = archive(tmp_path / "bomb.tar.gz", [reg("zeros", b"\0" * (4 * 1024 * KB))])
    assert source.stat().st_size < 64 * KB
    with pytest.raises(BuildFailed, match="zeros"):
        unpack_archive(source, tmp_path / "code", limit_unpacked_bytes=1024 * KB)
    assert not (tmp_path / "code").exists()


@pytest.mark.parametrize("content", [b"", b"not an archive at all", b"\x1f\x8b\x08\x00garbage"])
def test_a_corrupt_archive_is_refused(tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "broken.tar.gz"
    source.write_bytes(content)
    with pytest.raises(BuildFailed, match="not a valid"):
        unpack_archive(source, tmp_path / "code")
    assert not (tmp_path / "code").exists()


def test_a_good_archive_unpacks_whole(tmp_path: Path) -> None:
    members = [
        Member("./", tarfile.DIRTYPE),
        Member("pkg", tarfile.DIRTYPE, mode=0o700),
        reg("pkg/__init__.py", b""),
        reg("pkg/views.py", b"def view(): ...\n", 0o600),
        reg("run.sh", b"#!/bin/sh\n", 0o4755),
        reg("deep/er/file.txt", b"implicit parents"),
        sym("alias.py", "pkg/views.py"),
        sym("pkg/up", "../run.sh"),
        sym("dangling", "missing/inside"),
        hard("pkg/copy.py", "pkg/views.py"),
    ]
    dest = tmp_path / "code"
    stats = unpack_archive(archive(tmp_path / "app.tar.gz", members), dest)
    assert (stats.files, stats.links) == (4, 4)
    assert (dest / "pkg" / "views.py").read_text() == "def view(): ...\n"
    assert (dest / "alias.py").read_text() == "def view(): ...\n"
    assert os.readlink(dest / "pkg" / "up") == "../run.sh"
    assert (dest / "deep" / "er" / "file.txt").read_text() == "implicit parents"
    assert (dest / "pkg" / "copy.py").stat().st_ino == (dest / "pkg" / "views.py").stat().st_ino
    assert (dest / "run.sh").stat().st_mode & 0o7777 == 0o755, "set-uid dropped, executable kept"
    assert (dest / "pkg" / "views.py").stat().st_mode & 0o777 == 0o644
    assert (dest / "pkg").stat().st_mode & 0o777 == 0o755


def test_a_plain_tar_unpacks_too(tmp_path: Path) -> None:
    source = archive(tmp_path / "app.tar", [reg("main.py", b"app = 1\n")], gzipped=False)
    unpack_archive(source, tmp_path / "code")
    assert (tmp_path / "code" / "main.py").read_text() == "app = 1\n"


def test_what_pack_app_packs_unpacks_identically(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "main.py").write_text("import pkg\n")
    (app / "pkg" / "__init__.py").write_text("")
    (app / "serve").write_text("#!/bin/sh\n")
    (app / "serve").chmod(0o755)
    os.symlink("main.py", app / "entry.py")
    packed = pack_app(app, tmp_path / "app.tar.gz")
    dest = tmp_path / "code"
    stats = unpack_archive(packed.path, dest)
    assert stats.files == packed.files and stats.unpacked_bytes == packed.unpacked_size

    def listing(root: Path, read: Callable[[Path], object]) -> dict[str, object]:
        return {str(p.relative_to(root)): read(p) for p in sorted(root.rglob("*"))}

    def describe(path: Path) -> object:
        if path.is_symlink():
            return ("link", os.readlink(path))
        return ("dir",) if path.is_dir() else ("file", path.read_bytes(), os.access(path, os.X_OK))

    assert listing(dest, describe) == listing(app, describe)


def test_the_destination_must_not_exist(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    with pytest.raises(FileExistsError):
        unpack_archive(archive(tmp_path / "a.tar.gz", [reg("x")]), tmp_path / "code")
