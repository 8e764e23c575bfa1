"""Root without bubblewrap: the launcher shows an app's uid the paths it needs when a directory
above them is closed to that uid, through a private mount namespace, and nothing else of that
directory; the host's modes and mounts stay as they were."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.runtime.sandbox.confine import Confinement, LauncherPlan
from roost.runtime.sandbox.reveal import interpreter_dirs, paths_for, prefixes

APP = 61_003  # a uid no account uses
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root drops to an app's uid and mounts")


@pytest.fixture
def closed() -> Iterator[Path]:
    """A 0700 folder (as /root is) holding a prefix the app needs and a secret it must not see."""
    base = Path(tempfile.mkdtemp(prefix="roost-reveal-"))
    try:
        (base / "prefix" / "bin").mkdir(parents=True)
        (base / "prefix" / "bin" / "data").write_text("interpreter\n")
        (base / "out").mkdir(mode=0o700)
        os.chown(base / "out", APP, APP)
        (base / "secret").write_text("root only\n")
        base.chmod(0o700)
        (base / "prefix").chmod(0o755)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def launch_as(uid: int, reveal: list[tuple[str, bool]], script: str) -> subprocess.CompletedProcess[str]:
    argv = Confinement(LauncherPlan(uid=uid, gid=uid, reveal=reveal), None).command(["/bin/sh", "-c", script])
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False, cwd="/")


@needs_root
def test_the_app_reaches_what_it_needs_and_nothing_else(closed: Path) -> None:
    before = Path("/proc/self/mountinfo").read_text()
    script = (
        f"cat {closed}/prefix/bin/data; ls -A {closed}; "
        f"cat {closed}/secret 2>/dev/null || echo no-secret; "
        f"touch {closed}/prefix/x 2>/dev/null || echo read-only; "
        f"touch {closed}/out/mine && echo wrote"
    )
    done = launch_as(APP, [(str(closed / "prefix"), False), (str(closed / "out"), True)], script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["interpreter", "out", "prefix", "no-secret", "read-only", "wrote"]
    assert (closed / "out" / "mine").exists()  # the bind is the host's directory
    assert oct(closed.stat().st_mode & 0o777) == oct(0o700)
    assert Path("/proc/self/mountinfo").read_text() == before  # nothing reached the host's mounts


@needs_root
def test_without_the_view_the_same_uid_is_refused(closed: Path) -> None:
    """The case the view exists for: an interpreter under a 0700 folder."""
    done = launch_as(APP, [], f"cat {closed}/prefix/bin/data")
    assert done.returncode != 0
    assert "Permission denied" in done.stderr


@needs_root
def test_nothing_closed_means_no_namespace(tmp_path: Path) -> None:
    open_dir = Path(tempfile.mkdtemp(prefix="roost-open-"))
    try:
        open_dir.chmod(0o755)
        done = launch_as(APP, [(str(open_dir), False)], "readlink /proc/self/ns/mnt")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == os.readlink("/proc/self/ns/mnt")
    finally:
        open_dir.rmdir()


def test_the_interpreter_prefix_is_read_from_the_venv(tmp_path: Path) -> None:
    real = tmp_path / "real" / "3.11"
    (real / "bin").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text(f"home = {tmp_path / 'link' / '3.11' / 'bin'}\nversion_info = 3.11.7\n")
    assert interpreter_dirs(venv) == [tmp_path / "link" / "3.11", real]
    assert prefixes(real / "bin" / "python") == [real]
    assert interpreter_dirs(tmp_path / "no-venv") == []


def test_an_app_process_reaches_its_code_venv_and_tmpdirs(tmp_path: Path) -> None:
    found = dict(paths_for(tmp_path / "code", tmp_path / "venv", tmp_path / "run" / "tmp" / "i1"))
    assert found[str(tmp_path / "code")] is False and found[str(tmp_path / "venv")] is False
    assert found[str(tmp_path / "run" / "tmp")] is True  # forked instances' TMPDIRs appear there later
    assert any(path.endswith("runner.py") for path in found)
