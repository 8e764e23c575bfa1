"""The shared uv cache stays the daemon's: wheels-only installs use it directly, a build that
must run a package's code gets the app's view, and a process of an app's uid working in its view
cannot change a shared file. Real uv, the real package index, real uids (root only for those)."""

from __future__ import annotations

import asyncio
import doctest
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.builder import Builder, BuildRequest
from roost.builder import cache as cache_module
from roost.builder.cache import UvCache, admits_trusted
from roost.builder.process import build_env, uv_binary
from roost.runtime.protocol import RUNNER_REQUIREMENTS
from tests.unit.builder.test_builder import Log, lock_app, make_app, packed

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a second uid needs root")
APP_UID = 265000 + uuid.uuid4().int % 500  # in the default app range; nothing of it outlives the test

ATTACK = """
import errno, json, os, sys
view = sys.argv[1]
out = {"write": [], "chmod": [], "link": [], "replaced": 0}
def fail(exc): raise exc
for directory, _, files in os.walk(view, onerror=fail):
    for name in files:
        path = os.path.join(directory, name)
        if os.lstat(path).st_uid == os.getuid():
            continue  # the view's own markers
        for kind, attempt in (
            ("write", lambda: open(path, "ab").close()),
            ("chmod", lambda: os.chmod(path, 0o666)),
            ("link", lambda: os.link(path, path + ".again")),
        ):
            try:
                attempt()
                out[kind].append("allowed " + path)
            except OSError as exc:
                out[kind].append(errno.errorcode[exc.errno])
        os.replace(path + "", path + ".old")  # its own directory: allowed, and only the view changes
        with open(path, "w") as poisoned:
            poisoned.write("poisoned")
        out["replaced"] += 1
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shared cache the trusted step filled: six's wheel, from the index."""
    cache = tmp_path_factory.mktemp("shared-uv")
    venv = tmp_path_factory.mktemp("venv") / "v"
    env = {**build_env(cache), **UvCache(cache, cache.parent / "views").trusted_environ()}
    subprocess.run([uv_binary(), "venv", "-q", "--python", sys.executable, str(venv)], env=env, check=True)
    argv = UvCache(cache, cache).trusted_install(uv_binary(), venv / "bin" / "python", ["six==1.16.0"], offline=False)
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return cache


@pytest.fixture
def reachable(tmp_path: Path) -> Iterator[Path]:
    """A folder an app's uid can pass through (pytest's own tmp folders are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="roost-cache-test-", dir="/tmp"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def digest_tree(root: Path) -> dict[str, tuple[str, int, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_uid, p.stat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_only_names_and_versions_from_the_index_are_trusted() -> None:
    assert admits_trusted(["flask>=3.0", "six==1.16.0 ; python_version >= '3'", "idna~=3.6", "# note", ""])
    for line in ["-r base.txt", "--index-url http://x/", "-e .", "./lib", "/tmp/x.whl", "pkg @ file:///x",
                 "git+https://e.x/r", "pkg@https://e.x/p.whl", "~/wheel.whl"]:  # fmt: skip
        assert not admits_trusted([line]), line


@needs_root
def test_a_view_cannot_change_the_shared_cache(shared: Path, reachable: Path) -> None:
    before = digest_tree(shared)
    assert any(name.endswith(".py") for name in before)  # six's unpacked wheel is there
    cache = UvCache(shared, reachable / "views")
    view = cache.view("shop", owner=APP_UID, group=APP_UID - 1)
    assert not view.warm
    assert view.path.stat().st_uid == APP_UID
    links = sorted(str(p.relative_to(shared)) for p in shared.rglob("*") if p.is_symlink())
    assert links, "uv points wheel entries at unpacked archives with symlinks"
    assert sorted(str(p.relative_to(view.path)) for p in view.path.rglob("*") if p.is_symlink()) == links
    as_app = ["setpriv", f"--reuid={APP_UID}", f"--regid={APP_UID - 1}", "--clear-groups"]
    done = subprocess.run(
        [*as_app, sys.executable, "-I", "-c", ATTACK, str(view.path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["replaced"] > 10, seen
    assert set(seen["write"]) == {"EACCES"}, seen["write"]
    assert set(seen["chmod"]) == {"EPERM"}, seen["chmod"]
    assert set(seen["link"]) == {"EPERM"}, seen["link"]  # fs.protected_hardlinks
    assert digest_tree(shared) == before  # not a byte, owner or mode of the shared cache changed
    assert cache.view("shop", owner=APP_UID, group=APP_UID - 1).warm  # kept for the app's next build


@needs_root
def test_uv_as_the_app_installs_from_its_view_offline(shared: Path, reachable: Path) -> None:
    """The view serves uv under the app's uid with no network: what a locked rebuild gets."""
    before = digest_tree(shared)
    cache = UvCache(shared, reachable / "views")
    view = cache.view("blog", owner=APP_UID, group=APP_UID - 1)
    work = reachable / "work"
    work.mkdir()
    os.chown(work, APP_UID, APP_UID - 1)
    as_app = ["setpriv", f"--reuid={APP_UID}", f"--regid={APP_UID - 1}", "--clear-groups"]
    env = {**build_env(shared), **view.environ(), "HOME": str(work)}
    venv = work / "v"
    python = "/usr/bin/python3"  # one the app's uid may run (the test's own lives under /root)
    # cwd: the app's own folder (uv looks for uv.toml from there up; a 0700 clone is closed to the app)
    subprocess.run([*as_app, uv_binary(), "venv", "-q", "--python", python, str(venv)], env=env, check=True, cwd=work)
    argv = cache.untrusted_install(uv_binary(), venv / "bin" / "python", ["six==1.16.0"], offline=True)
    done = subprocess.run([*as_app, *argv], env=env, capture_output=True, text=True, timeout=300, cwd=work)
    assert done.returncode == 0, done.stderr
    assert (venv / "lib").exists() and next(venv.glob("lib/python*/site-packages/six.py")).stat().st_uid == APP_UID
    assert digest_tree(shared) == before


async def test_a_wheels_only_app_needs_no_view(tmp_path: Path, shared: Path) -> None:
    home = tmp_path / "home"
    log = Log()
    output = await Builder(home, RUNNER_REQUIREMENTS, cache_dir=shared).build(
        BuildRequest("plain", "a1b2c3d4", packed(tmp_path, "plain", {"requirements.txt": "six==1.16.0\n"})), log
    )
    assert "where a build's code may run" not in log.text, log.text
    assert not (home / "cache" / "uv-views" / "plain").exists()
    assert list(output.venv_dir.glob("lib/python*/site-packages/__pycache__/six.cpython-*.pyc"))  # compiled


async def test_an_sdist_builds_with_the_apps_view_and_the_shared_cache_keeps_no_trace(
    tmp_path: Path, shared: Path
) -> None:
    home = tmp_path / "home"
    before = digest_tree(shared)
    log = Log()
    files = {"requirements.txt": "--no-binary six\nsix==1.16.0\n"}
    output = await Builder(home, RUNNER_REQUIREMENTS, cache_dir=shared).build(
        BuildRequest("sdist", "a1b2c3d4", packed(tmp_path, "sdist", files)), log
    )
    assert "the requirements name files or URLs" in log.text, log.text
    view = home / "cache" / "uv-views" / "sdist"
    assert list(view.glob("sdists-v*/pypi/six/*")), "six's sdist was built in the view"
    assert not list(shared.glob("sdists-v*/pypi/six/*")), "and not in the shared cache"
    assert set(before) <= set(digest_tree(shared)) and all(digest_tree(shared)[k] == v for k, v in before.items())
    assert list(output.venv_dir.glob("lib/python*/site-packages/six.py"))


async def test_a_locked_app_on_a_warm_cache_builds_without_the_network(
    tmp_path: Path, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(tmp_path / "locked", {"pyproject.toml": PYPROJECT})
    lock_app(app, shared)
    archive = packed(tmp_path, "locked", {"pyproject.toml": PYPROJECT, "uv.lock": (app / "uv.lock").read_text()})
    await Builder(tmp_path / "warm", RUNNER_REQUIREMENTS, cache_dir=shared).build(
        BuildRequest("locked", "a1b2c3d4", archive), Log()
    )
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: any request fails
    log = Log()
    output = await Builder(tmp_path / "offline", RUNNER_REQUIREMENTS, cache_dir=shared).build(
        BuildRequest("locked", "b1b2c3d4", archive), log
    )
    assert not output.reused_venv
    assert "where a build's code may run" not in log.text, log.text  # the trusted step, offline
    assert list(output.venv_dir.glob("lib/python*/site-packages/six.py"))


PYPROJECT = '[project]\nname = "locked"\nversion = "0"\nrequires-python = ">=3.11"\ndependencies = ["six==1.16.0"]\n'


async def test_two_first_builds_of_an_app_share_one_view(shared: Path, tmp_path: Path) -> None:
    cache = UvCache(shared, tmp_path / "views")
    views = await asyncio.gather(*(asyncio.to_thread(cache.view, "twice") for _ in range(4)))
    assert {view.path for view in views} == {tmp_path / "views" / "twice"}
    assert sorted(p.name for p in (tmp_path / "views").iterdir()) == ["twice"]  # no staging left behind


def test_removed_apps_views_are_pruned_and_only_their_own_files_count_as_freed(shared: Path, tmp_path: Path) -> None:
    cache = UvCache(shared, tmp_path / "views")
    kept, gone = cache.view("shop"), cache.view("gone")
    (gone.path / "built-sdist.whl").write_bytes(b"x" * 5000)  # what only that app's builds added
    staging = tmp_path / "views" / ".seed-new-0a1b"  # a build under way seeds a view here
    staging.mkdir()
    ((name, freed),) = cache.prune_views({"shop"})
    # Linked files stay the shared cache's: only what the view added, and uv's few marker files
    # (copied into every view), are freed.
    assert name == "gone" and 5000 <= freed < 5000 + 4096, freed
    assert sorted(p.name for p in (tmp_path / "views").iterdir()) == [".seed-new-0a1b", "shop"]
    assert kept.path.is_dir() and digest_tree(kept.path)
    assert cache.prune_views({"shop"}) == []
    assert UvCache(shared, tmp_path / "never-made").prune_views(set()) == []


def test_the_docstring_examples_hold() -> None:
    result = doctest.testmod(cache_module, verbose=False, report=True)
    assert result.attempted > 0 and result.failed == 0, result


async def test_an_app_with_its_own_index_settings_is_not_installed_by_the_daemon(tmp_path: Path, shared: Path) -> None:
    """The trusted step reads no uv settings: it would take the app's packages from the default index."""
    pyproject = (
        '[project]\nname = "corp"\nversion = "0"\ndependencies = ["six==1.16.0"]\n'
        '[tool.uv]\nextra-index-url = ["https://pypi.org/simple"]\n'
    )
    log = Log()
    output = await Builder(tmp_path / "home", RUNNER_REQUIREMENTS, cache_dir=shared).build(
        BuildRequest("corp", "a1b2c3d4", packed(tmp_path, "corp", {"pyproject.toml": pyproject})), log
    )
    assert "the app's uv settings name its own indexes or sources" in log.text, log.text
    assert list(output.venv_dir.glob("lib/python*/site-packages/six.py"))
