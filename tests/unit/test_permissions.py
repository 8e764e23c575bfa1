"""File modes of Roost's home: the store and the blobs are the owner's alone, and (root without
bubblewrap) an app's uid reaches its own code and nothing else of the home."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roost.registry import Registry
from roost.runtime.sandbox.permissions import open_for
from roost.store.db import connect
from tests.another_user import as_user

APP_A, APP_B = 61_001, 61_002  # uids no account uses (checked below)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_store_is_owner_only_with_its_wal_and_shm(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, under which SQLite alone would make 0644 files
    try:
        conn = connect(tmp_path / "roost.db")
        try:
            conn.execute("CREATE TABLE probe (x)")  # a write: the WAL and shared memory now exist
            for name in ("roost.db", "roost.db-wal", "roost.db-shm"):
                assert (tmp_path / name).exists(), name
                assert mode(tmp_path / name) == 0o600, name
        finally:
            conn.close()
    finally:
        os.umask(old)


def test_an_older_world_readable_store_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "roost.db"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    connect(path).close()
    assert mode(path) == 0o600


def test_blobs_are_owner_only(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "blobs")
    source = tmp_path / "app.tar.gz"
    source.write_bytes(b"an app's source code")
    digest = "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
    blob = asyncio.run(registry.put_file(digest, source))
    assert mode(blob) == 0o600
    assert mode(tmp_path / "blobs") == 0o700
    assert mode(blob.parent) == 0o700


@pytest.fixture
def home() -> Iterator[Path]:
    """A daemon's home as `roost serve` leaves it (0700), with two apps and a shared venv, in a
    directory anyone may enter, as /var/lib is (above a closed one the launcher's view is needed)."""
    base = Path(tempfile.mkdtemp(prefix="roost-perm-", dir="/tmp"))
    base.chmod(0o755)
    try:
        home = base / "home"
        for relative in ("deployments/a/d1/code/pkg", "deployments/b/d2/code", "venvs/k1/bin"):
            (home / relative).mkdir(parents=True)
        os.chmod(home, 0o700)
        (home / "deployments/a/d1/code/pkg/main.py").write_text("SECRET_A = 1\n")
        (home / "deployments/b/d2/code/main.py").write_text("SECRET_B = 2\n")
        (home / "venvs/k1/bin/tool").write_text("#!/bin/sh\n")
        (home / "venvs/k1/bin/tool").chmod(0o755)
        (home / "roost.db").write_text("the store")
        (home / "roost.db").chmod(0o600)
        yield home
    finally:
        shutil.rmtree(base, ignore_errors=True)


def can(action: Callable[[], object]) -> str:
    try:
        action()
        return "yes"
    except PermissionError:
        return "no"


def probe(home: str) -> str:
    """What an app's uid may do in `home` (run as that uid by as_user)."""
    actions: list[Callable[[], object]] = [
        lambda: Path(home, "deployments/a/d1/code/pkg/main.py").read_text(),
        lambda: Path(home, "deployments/b/d2/code/main.py").read_text(),
        lambda: Path(home, "venvs/k1/bin/tool").read_text(),
        lambda: os.listdir(home),
        lambda: os.listdir(home + "/deployments"),
        lambda: os.listdir(home + "/deployments/a"),
        lambda: Path(home, "roost.db").read_text(),
    ]
    return " ".join(can(action) for action in actions)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can act as the apps' uids")
def test_an_app_uid_reaches_its_own_code_and_nothing_else(home: Path) -> None:
    for uid in (APP_A, APP_B):
        with pytest.raises(KeyError):
            pwd.getpwuid(uid)
    open_for(home / "deployments/a/d1/code", home / "venvs/k1", home, APP_A)
    open_for(home / "deployments/b/d2/code", home / "venvs/k1", home, APP_B)

    assert mode(home) & 0o077 == 0o001  # traversable by others, never listable
    assert mode(home / "deployments") & stat.S_IROTH == 0
    assert mode(home / "deployments/a/d1/code") & stat.S_IRWXO == 0
    assert mode(home / "deployments/a/d1/code/pkg/main.py") & 0o077 == 0o040
    assert mode(home / "venvs/k1/bin/tool") & 0o007 == 0o005  # a venv is shared: open to all, read-only
    assert mode(home / "roost.db") == 0o600

    #                                           own code, other's code, venv, ls home, ls deployments, ls own app, store
    assert as_user(APP_A, lambda: probe(str(home))) == "yes no yes no no no no"
    assert as_user(APP_B, lambda: probe(str(home))) == "no yes yes no no no no"


def test_directories_above_the_home_are_never_changed(home: Path) -> None:
    """A home under a private folder (root's own, or a 0700 temporary one) stays private: the
    launcher shows an app its paths through a view instead (tests/unit/sandbox/test_reveal.py)."""
    home.parent.chmod(0o700)
    open_for(home / "deployments/a/d1/code", home / "venvs/k1", home, APP_A)
    assert mode(home.parent) == 0o700
    assert mode(home) & 0o077 == 0o001


@pytest.mark.skipif(os.geteuid() != 0, reason="open_for gives code to an app's gid: root only, as Roost uses it")
def test_files_linked_from_elsewhere_are_never_narrowed(home: Path) -> None:
    """uv hard-links a venv's files from its cache: narrowing one link would narrow the cache's
    file and every other venv's, and an app of another uid could no longer import it."""
    cache = home.parent / "uv-cache"
    cache.mkdir()
    for name in ("shared.py", "vendored.py"):
        (cache / name).write_text("X = 1\n")
        (cache / name).chmod(0o644)
    os.link(cache / "shared.py", home / "venvs/k1/shared.py")
    os.link(cache / "vendored.py", home / "deployments/a/d1/code/vendored.py")

    open_for(home / "deployments/a/d1/code", home / "venvs/k1", home, APP_A)

    for name in ("shared.py", "vendored.py"):
        info = (cache / name).lstat()
        assert stat.S_IMODE(info.st_mode) & 0o044 == 0o044, name
        assert info.st_gid == os.getegid(), name
    assert mode(home / "deployments/a/d1/code/pkg/main.py") & 0o007 == 0
