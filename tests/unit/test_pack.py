"""pack_app: deterministic archives, ignore rules, normalized modes and owners."""

import gzip
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from roost.errors import UsageError
from roost.pack import FIXED_MTIME, digest_file, pack_app


def write(path: Path, text: str = "x", mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def make_app(root: Path) -> Path:
    write(root / "main.py", "app = None\n")
    write(root / "run.sh", "#!/bin/sh\n", 0o700)
    write(root / "pkg" / "__init__.py", "")
    write(root / "pkg" / "views.py", "def view(): pass\n", 0o600)
    (root / "empty").mkdir()
    os.symlink("pkg/views.py", root / "alias.py")
    return root


def names(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


def test_the_same_tree_packs_to_the_same_digest(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    first = pack_app(app, tmp_path / "one.tar.gz")
    second = pack_app(app, tmp_path / "two.tar.gz")
    assert first.digest == second.digest
    assert first.digest.startswith("sha256:") and len(first.digest) == 7 + 64
    assert first.digest == digest_file(first.path)
    assert first.size == first.path.stat().st_size
    assert first.files == 4  # regular files; the symlink and the folders are entries, not files
    assert first.unpacked_size == sum(p.stat().st_size for p in app.rglob("*") if p.is_file() and not p.is_symlink())


def test_mtimes_owners_modes_and_location_do_not_change_the_digest(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    before = pack_app(app, tmp_path / "before.tar.gz").digest
    for path in [app, *app.rglob("*")]:
        os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
    (app / "main.py").chmod(0o664)
    copy = tmp_path / "elsewhere" / "other-name"
    shutil.copytree(app, copy, symlinks=True)
    assert pack_app(app, tmp_path / "touched.tar.gz").digest == before
    assert pack_app(copy, tmp_path / "copy.tar.gz").digest == before


def test_a_change_of_content_changes_the_digest(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    before = pack_app(app, tmp_path / "a.tar.gz").digest
    write(app / "main.py", "app = 1\n")
    assert pack_app(app, tmp_path / "b.tar.gz").digest != before


def test_entries_are_sorted_normalized_and_owned_by_nobody(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    packed = pack_app(app, tmp_path / "app.tar.gz")
    with tarfile.open(packed.path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == FIXED_MTIME
    by_name = {m.name: m for m in members}
    assert by_name["pkg"].isdir() and by_name["pkg"].mode == 0o755
    assert by_name["empty"].isdir()
    assert by_name["run.sh"].mode == 0o755
    assert by_name["main.py"].mode == 0o644
    assert by_name["pkg/views.py"].mode == 0o644
    assert by_name["alias.py"].issym() and by_name["alias.py"].linkname == "pkg/views.py"


def test_the_gzip_header_has_no_name_and_no_time(tmp_path: Path) -> None:
    packed = pack_app(make_app(tmp_path / "app"), tmp_path / "app.tar.gz")
    header = packed.path.read_bytes()[:10]
    assert header[:2] == b"\x1f\x8b"
    assert header[3] & 0x08 == 0, "FNAME flag set: the file name is in the header"
    assert header[4:8] == b"\0\0\0\0", "the gzip mtime is not zero"
    with gzip.open(packed.path) as handle:
        assert handle.read()


def test_ignore_files_and_the_always_left_out(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    write(app / ".gitignore", "*.log\n!keep.log\nbuild/\nlocal.env\n")
    write(app / ".roostignore", "secrets.txt\n!local.env\n")
    for name in ("debug.log", "keep.log", "build/out.bin", "local.env", "secrets.txt", "data/build"):
        write(app / name)
    write(app / "sub" / ".gitignore", "generated.py\n")
    write(app / "sub" / "generated.py")
    write(app / "sub" / "kept.py")
    write(app / "generated.py")
    write(app / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(app / "env" / "pyvenv.cfg", "home = /usr\n")
    write(app / "env" / "lib" / "site.py")
    write(app / ".venv" / "lib" / "x.py")
    write(app / "venv" / "lib" / "x.py")
    write(app / "pkg" / "__pycache__" / "views.cpython-311.pyc")
    write(app / "old.pyc")
    write(app / ".roost-home" / "roost.db")
    packed = names(pack_app(app, tmp_path / "app.tar.gz").path)
    assert {"keep.log", "local.env", "sub/kept.py", "generated.py", "data/build", ".gitignore", ".roostignore"} <= set(
        packed
    )
    for left_out in ("debug.log", "build", "secrets.txt", "sub/generated.py", ".git", "env", ".venv", "venv"):
        assert left_out not in packed
    assert not [n for n in packed if "__pycache__" in n or n.endswith(".pyc") or n.startswith(".roost-home")]


def test_the_archive_itself_is_never_packed(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    first = pack_app(app, app / "app.tar.gz")
    assert "app.tar.gz" not in names(first.path)


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a folder") as caught:
        pack_app(tmp_path / "nope", tmp_path / "app.tar.gz")
    assert caught.value.hint


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    app = tmp_path / "app"
    write(app / ".git" / "HEAD")
    (app / "empty").mkdir()
    with pytest.raises(UsageError, match="nothing to push") as caught:
        pack_app(app, tmp_path / "app.tar.gz")
    assert ".roostignore" in caught.value.hint
    assert not (tmp_path / "app.tar.gz").exists()


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside", "pkg/../../outside"])
def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path, target: str) -> None:
    app = make_app(tmp_path / "app")
    os.symlink(target, app / "leak")
    with pytest.raises(UsageError, match="leak") as caught:
        pack_app(app, tmp_path / "app.tar.gz")
    assert ".roostignore" in caught.value.hint


def test_an_ignored_symlink_out_of_the_folder_is_fine(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    os.symlink("/etc/passwd", app / "leak")
    write(app / ".roostignore", "leak\n")
    assert "leak" not in names(pack_app(app, tmp_path / "app.tar.gz").path)


def test_digest_file(tmp_path: Path) -> None:
    path = write(tmp_path / "f", "")
    assert digest_file(path) == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_links_to_virtual_environments_are_left_out_not_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app")
    outside = tmp_path / "elsewhere"
    write(outside / "pyvenv.cfg")
    os.symlink(outside, app / ".venv")
    os.symlink(outside, app / "venv")
    packed = names(pack_app(app, tmp_path / "app.tar.gz").path)
    assert ".venv" not in packed and "venv" not in packed
