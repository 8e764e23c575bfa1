"""The compiled edge (mypyc) is used only when it matches its sources; the pure-Python edge works too."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import roost.edge.client
from roost.edge import native

ROOT = Path(__file__).resolve().parents[3]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the edge's sources with (empty stand-ins for) every compiled module and a manifest."""
    monkeypatch.delenv(native.PURE_ENV, raising=False)
    for name in native.COMPILED:
        shutil.copy(native.HERE / f"{name}.py", tmp_path / f"{name}.py")
        (tmp_path / f"{name}{SUFFIX}").write_bytes(b"")
    (tmp_path / f"_native__mypyc{SUFFIX}").write_bytes(b"")
    (tmp_path / native.MANIFEST.name).write_text(native.source_hashes(tmp_path))
    return tmp_path


def test_a_build_that_matches_its_sources_is_used(built: Path) -> None:
    assert native.why_pure(built) == ""


def test_an_edited_source_makes_the_build_stale(built: Path) -> None:
    with (built / "wire.py").open("a") as source:
        source.write("# an edit after the build\n")
    assert "older than their sources" in native.why_pure(built)


def test_a_missing_compiled_module_or_record_means_pure_python(built: Path) -> None:
    (built / f"exchange{SUFFIX}").unlink()
    assert native.why_pure(built) == "compiled modules missing: exchange"
    (built / f"exchange{SUFFIX}").write_bytes(b"")
    (built / native.MANIFEST.name).unlink()
    assert native.why_pure(built) == "no record of what was compiled"


def test_no_build_at_all_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(native.PURE_ENV, raising=False)
    assert native.why_pure(tmp_path).startswith("not compiled")


def test_the_environment_can_ask_for_pure_python(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.PURE_ENV, "1")
    assert native.why_pure(built) == "ROOST_PURE_PYTHON=1"


def test_this_install_loads_what_its_build_allows() -> None:
    """A fresh build is imported compiled; anything else from the .py sources."""
    loader = roost.edge.client.__spec__.loader if roost.edge.client.__spec__ else None
    compiled = isinstance(loader, importlib.machinery.ExtensionFileLoader)
    assert compiled == (native.reason_pure == "")
    assert native.describe() == ("compiled with mypyc" if compiled else f"pure Python ({native.reason_pure})")


def test_the_pure_python_edge_passes_the_proxy_and_strict_parsing_suites() -> None:
    """The same forwarding and hostile-request tests, run on the sources rather than the build."""
    env = dict(os.environ, ROOST_PURE_PYTHON="1")
    probe = "import roost.edge, roost.edge.client as c; print(roost.edge.describe_build(), c.__file__)"
    loaded = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True)
    assert loaded.stdout.split() == ["pure", "Python", "(ROOST_PURE_PYTHON=1)", str(ROOT / "roost/edge/client.py")]
    suites = [
        "tests/unit/edge/test_proxy.py",
        "tests/unit/edge/test_strict.py",
        "tests/unit/edge/test_requests_table.py",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suites],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout.splitlines()[-1]
