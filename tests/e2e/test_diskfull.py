"""A full disk under ROOST_HOME: a push says so with a hint, leaves no partial upload, and the
daemon keeps serving what it served. The home lives on a small tmpfs of the test's own."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.apps import get, push, pushed, write_app
from tests.e2e.harness import running

DISK_SIZE = "256m"  # room for the store, one no-dependency venv (copied from the shared uv cache) and two builds
LEFT_FREE = 256 * 1024  # bytes left after filling: the store can still write, an upload of 2 MB cannot
CHUNK = 1024 * 1024


@contextlib.contextmanager
def small_disk(mount_point: Path) -> Iterator[Path]:
    """A tmpfs of DISK_SIZE at `mount_point` (unique: under the test's tmp_path), always unmounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill(disk: Path, leave: int) -> None:
    """Write a file until the device is full, then give back `leave` bytes."""
    filler = disk / "filler"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(os.urandom(CHUNK))
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    os.truncate(filler, max(0, filler.stat().st_size - leave))


def test_a_full_disk_is_named_and_cleaned_up_and_serving_goes_on(tmp_path: Path) -> None:
    handler = 'def handler(request):\n    return "still here\\n"\n'
    before = write_app(tmp_path, "before", {"roost.toml": 'name = "before"\nentrypoint = "main:handler"\n'})
    (before / "main.py").write_text(handler)
    big = write_app(tmp_path, "big", {"roost.toml": 'name = "big"\nentrypoint = "main:handler"\n', "main.py": handler})
    (big / "data.bin").write_bytes(os.urandom(2 * CHUNK))  # incompressible: the upload is 2 MB
    wide = write_app(
        tmp_path, "wide", {"roost.toml": 'name = "wide"\nentrypoint = "main:handler"\n', "main.py": handler}
    )
    (wide / "zeros.bin").write_bytes(bytes(40 * CHUNK))  # a small upload that unpacks to 40 MB
    with small_disk(tmp_path / "disk") as disk:
        home = disk / "home"
        home.mkdir()
        with running(home) as daemon:
            pushed(daemon, before)
            assert get(daemon, "before.localhost").text == "still here\n"
            fill(disk, LEFT_FREE)
            for app in (wide, big):  # the disk fills while unpacking, then while uploading
                code, out, err = push(daemon, app)
                said = out + err
                assert code != 0, said
                assert "no space left on the device holding ROOST_HOME (" in said, said
                assert "MB free)" in said and "hint:" in said, said
                assert "internal error" not in said, said
                assert ("unpacking the archive" in said) == (app == wide), "wide fails in the build, big on upload"
                assert list((home / "blobs").rglob("*.part")) == [], "a failed upload leaves no partial file"
                assert list((home / "deployments").glob("*/*/.code-*")) == [], "a failed unpack leaves nothing"
                answer = get(daemon, "before.localhost")
                assert (answer.status_code, answer.text) == (200, "still here\n")
            assert daemon.proc.poll() is None
