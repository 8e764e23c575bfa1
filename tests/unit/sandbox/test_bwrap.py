"""The bubblewrap view: its argv (pure), and a real sandbox built from it on this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from roost.runtime.sandbox.bwrap import View, ancestors, argv, interpreter_prefix


def test_argv_binds_code_and_venv_read_only_and_gives_a_sized_tmp(tmp_path: Path) -> None:
    view = View(Path("/srv/h/deployments/a/d/code"), (Path("/srv/h/venvs/k"),), 1024 * 1024, True, 200001, 200001)
    out = argv("bwrap", view, ["python", "x.py"])
    text = " ".join(out)
    assert "--ro-bind /srv/h/deployments/a/d/code /srv/h/deployments/a/d/code" in text
    assert "--ro-bind /srv/h/venvs/k /srv/h/venvs/k" in text
    assert "--size 1048576 --perms 1777 --tmpfs /tmp" in text
    assert "--size 1048576 --perms 1777 --tmpfs /dev/shm" in text  # multiprocessing locks, compileall -j
    assert "--unshare-net" in out and "--new-session" in out and "--die-with-parent" in out
    assert "--unshare-user" not in out  # root: setpriv drops to the uid inside
    assert "--reuid=200001" in text and "--no-new-privs" in text
    assert out[-2:] == ["python", "x.py"]
    assert "/srv/h" in text and "--ro-bind /srv/h /srv/h" not in text  # the home itself is never visible


def test_ancestors_are_created_above_the_binds() -> None:
    assert ancestors([Path("/a/b/c")], ()) == [Path("/a"), Path("/a/b")]


def test_interpreter_prefix_comes_from_pyvenv_cfg(tmp_path: Path) -> None:
    (tmp_path / "pyvenv.cfg").write_text("home = /opt/python/3.11/bin\nversion = 3.11\n")
    assert interpreter_prefix(tmp_path) == Path("/opt/python/3.11")
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert interpreter_prefix(tmp_path) is None


def test_a_real_sandbox_hides_the_home_and_makes_code_read_only(tmp_path: Path) -> None:
    binary = shutil.which("bwrap")
    if binary is None:
        pytest.fail(
            "bubblewrap is not installed: run `make install` (it installs it when root) or apt-get install bubblewrap"
        )
    home = tmp_path / "home"
    code = home / "deployments" / "app" / "code"
    code.mkdir(parents=True)
    (home / "roost.db").write_text("secret")
    (code / "main.py").write_text("x = 1\n")
    prefix = Path(sys.base_prefix)
    script = (
        "import os, pathlib\n"
        f"print('db', os.path.exists({str(home / 'roost.db')!r}))\n"
        "try:\n    open('main.py', 'a').write('y')\n    print('write ok')\n"
        "except OSError as e:\n    print('write', e.errno)\n"
        "pathlib.Path(os.environ.get('TMPDIR', '/tmp'), 'f').write_text('t'); print('tmp ok')\n"
        "print('uid', os.getuid())\n"
    )
    view = View(code, (prefix,), 4 * 1024 * 1024, uid=200001 if _root() else None, gid=200001 if _root() else None)
    python = os.path.realpath(sys.executable)  # the interpreter itself, under the bound prefix
    result = subprocess.run(argv(binary, view, [python, "-c", script]), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "db False" in result.stdout
    assert "write 30" in result.stdout or "write 13" in result.stdout  # EROFS (or EACCES)
    assert "tmp ok" in result.stdout
    if _root():
        assert "uid 200001" in result.stdout


def _root() -> bool:
    import os

    return os.geteuid() == 0
