"""Builds against a real `roost serve`: a malicious sdist in an app's requirements runs its setup.py
inside the build's jail, where reading the store, writing to /, reaching the admin socket, calling
out to an address that is not the package index and a fork bomb all fail, the build log says what
was stopped, and production keeps serving; a normal
C extension still builds from source. Needs root, cgroups, bubblewrap and gcc."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import socket
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.apps import get, push, pushed, wait_until, write_app
from tests.e2e.harness import Daemon, leftover_builds, running

HANDLER = 'entrypoint = "main:handler"\nmode = "function"\n'
UID_FIRST, UID_LAST = 310000, 310999
REPORT = "EVIL-REPORT "

EVIL_SETUP = """
import errno, json, os, socket, sys, time

def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))

def read(path):
    with open(path, "rb") as handle:
        handle.read(1)

def write_root():
    with open({marker!r}, "w") as handle:
        handle.write("owned")

def admin_socket():
    with socket.socket(socket.AF_UNIX) as client:
        client.connect({socket!r})

def call_out(address):
    with socket.create_connection((address, {port}), timeout=5):
        pass

def fork_bomb():
    children = 0
    try:
        while children < 1000:
            if os.fork() == 0:
                os.closerange(0, 65536)  # keep no pipe of uv's open
                time.sleep(600)
                os._exit(0)
            children += 1
    except OSError as exc:
        return children, errno.errorcode.get(exc.errno, str(exc.errno))
    return children, "ok"

forked, fork_error = fork_bomb()
report = {{
    "uid": os.getuid(),
    "gid": os.getgid(),
    "read_store": attempt(lambda: read({store!r})),
    "read_key": attempt(lambda: read({key!r})),
    "write_root": attempt(write_root),
    "admin_socket": attempt(admin_socket),
    "call_out": {{address: attempt(lambda: call_out(address)) for address in {addresses!r}}},
    "forked": forked,
    "fork_error": fork_error,
}}
print({report!r} + json.dumps(report), flush=True)
sys.exit(1)
"""

CEXT_SETUP = """
from setuptools import Extension, setup
setup(name="cext", version="0.1", ext_modules=[Extension("cext", ["cext.c"])])
"""
CEXT_C = """
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, "42"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_cext(void) { return PyModule_Create(&module); }
"""


def sdist(directory: Path, name: str, files: dict[str, str]) -> Path:
    """A source distribution `name-0.1.tar.gz` in `directory`, written by hand: PKG-INFO and `files`."""
    path = directory / f"{name}-0.1.tar.gz"
    members = {"PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", **files}
    with tarfile.open(path, "w:gz") as archive:
        for member, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-0.1/{member}")
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("buildbox")
    home = root / "home"
    home.mkdir()
    with running(home, "--uid-range", f"{UID_FIRST}-{UID_LAST}", "--build-pids", "256") as started:
        yield started


def test_the_daemon_says_what_builds_get(daemon: Daemon) -> None:
    line = next((line for line in daemon.output().splitlines() if "builds:" in line), "")
    assert "a bubblewrap view of their own folders" in line, daemon.output()[-2000:]
    assert f"gid {UID_FIRST - 1}" in line and "pids 256" in line and "memory 2G" in line, line


def test_a_malicious_sdist_is_stopped_and_production_keeps_serving(daemon: Daemon, tmp_path: Path) -> None:
    app = write_app(tmp_path, "shop", {"roost.toml": HANDLER, "main.py": "def handler(request):\n    return 'v1'\n"})
    pushed(daemon, app)
    assert get(daemon, "shop.localhost").text == "v1"

    marker = Path("/") / f"roost-evil-{secrets.token_hex(4)}"
    paths = {
        "marker": str(marker),
        "socket": str(daemon.home / "roost.sock"),
        "store": str(daemon.home / "roost.db"),
        "key": str(daemon.home / "secret.key"),
        "report": REPORT,
    }
    assert Path(paths["store"]).exists() and Path(paths["socket"]).exists()
    listener = socket.create_server(("", 0), family=socket.AF_INET)  # not the index: no build may reach it
    listener.setblocking(False)
    addresses = ["127.0.0.1", *_own_addresses()]
    sdist(app, "evil", {"setup.py": EVIL_SETUP.format(**paths, port=listener.getsockname()[1], addresses=addresses)})
    (app / "requirements.txt").write_text("./evil-0.1.tar.gz\n")
    (app / "main.py").write_text("def handler(request):\n    return 'v2'\n")
    try:
        code, out, err = push(daemon, app)
        assert code != 0, out + err
        found = re.search(re.escape(REPORT) + r"(\{.*\})", out + err)
        assert found, out + err
        report = json.loads(found.group(1))
        assert UID_FIRST <= report["uid"] <= UID_LAST and report["gid"] == UID_FIRST - 1, report
        assert report["read_store"] == report["read_key"] == "ENOENT", report  # not in the build's view at all
        assert report["write_root"] in ("EACCES", "EROFS"), report
        assert report["admin_socket"] == "ENOENT", report
        assert report["fork_error"] == "EAGAIN" and report["forked"] < 256, report
        assert set(report["call_out"]) == set(addresses), report
        assert all(
            error in ("ECONNREFUSED", "EPERM", "EHOSTUNREACH", "EACCES") for error in report["call_out"].values()
        )
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing of the build ever connected
        assert not marker.exists()
        assert "stopped by the build pids limit" in out + err and "--build-pids" in out + err, out + err
        assert get(daemon, "shop.localhost").text == "v1"  # production never moved
        wait_until("no build process left", lambda: not leftover_builds(daemon.home) or None, timeout=30)
        assert not _build_groups(daemon.home), _build_groups(daemon.home)
    finally:
        listener.close()
        marker.unlink(missing_ok=True)


def _own_addresses() -> list[str]:
    """This host's address on its default route, if it has one (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return []
        own = str(probe.getsockname()[0])
    return [] if own.startswith("127.") else [own]


def test_jailed_builds_install_wheels_from_the_shared_cache(daemon: Daemon, tmp_path: Path) -> None:
    """The trusted, wheels-only step uses the daemon's shared uv cache even though a jailed build's
    other uv steps run without one: a second app with the same dependencies downloads nothing."""
    main = "import six\n\ndef handler(request):\n    return six.__version__\n"
    outputs = []
    for name in ("cached-a", "cached-b"):  # the comment makes a new venv: it is not reused
        files = {"roost.toml": HANDLER, "main.py": main, "requirements.txt": f"six==1.16.0  # {name}\n"}
        outputs.append(pushed(daemon, write_app(tmp_path, name, files)))
        assert get(daemon, f"{name}.localhost").text == "1.16.0"
    second = outputs[1]
    assert "where a build's code may run" not in second, second  # the trusted step did the install
    assert "Downloading" not in second and "Downloaded" not in second, second


def test_a_c_extension_builds_from_source(daemon: Daemon, tmp_path: Path) -> None:
    main = "import cext\n\ndef handler(request):\n    return str(cext.answer())\n"
    app = write_app(tmp_path, "native", {"roost.toml": HANDLER, "main.py": main})
    sdist(app, "cext", {"setup.py": CEXT_SETUP, "cext.c": textwrap.dedent(CEXT_C)})
    (app / "requirements.txt").write_text("./cext-0.1.tar.gz\n")
    pushed(daemon, app)
    assert get(daemon, "native.localhost").text == "42"
    venv = next((daemon.home / "venvs").glob("*/lib/python*/site-packages/cext*.so"))
    code = next((daemon.home / "deployments" / "native").glob("*/code/main.py"))
    for path in (venv, venv.parent, code, code.parent):  # the app's uid cannot change its deployment
        info = path.stat()
        assert info.st_uid == os.geteuid() and not info.st_mode & 0o022, (path, oct(info.st_mode), info.st_uid)
    # The sdist was built in the app's own view of the uv cache; removing the app lets gc remove it.
    assert daemon.cli("remove", "native", "--yes").returncode == 0
    report = json.loads(daemon.cli("gc", "--yes", "--json").stdout)
    freed = {view["name"]: view["bytes"] for view in report["views"]}
    assert "native" in freed and freed["native"] > 0, report  # cext's built wheel was the view's own
    assert "native" not in {view["name"] for view in json.loads(daemon.cli("gc", "--yes", "--json").stdout)["views"]}


def _build_groups(home: Path) -> list[Path]:
    """This daemon's build cgroups that still hold a process (each build's group goes when it ends)."""
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:10]
    tops = [top for top in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")) if top.is_dir()]
    return [
        group
        for top in tops[:1]
        for builds in top.glob(f"**/roost-{digest}/builds")
        for group in builds.iterdir()
        if group.is_dir() and (group / "cgroup.procs").read_text().strip()
    ]


HOG_SETUP = """
import sys
print("allocating", flush=True)
hog = b"x" * (600 * 1024 * 1024)
print("allocated", len(hog), flush=True)
sys.exit(1)
"""
SLEEPER_SETUP = """
import time
time.sleep(600)
"""


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with small build limits: 160M of memory, 40s per build."""
    root = tmp_path_factory.mktemp("tight")
    home = root / "home"
    home.mkdir()
    flags = ("--uid-range", f"{UID_LAST + 1}-{UID_LAST + 100}", "--build-memory", "160M", "--build-timeout", "40s")
    with running(home, *flags) as started:
        yield started


@pytest.fixture(scope="module")
def brief(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon whose builds may take 20s (a small app's good build takes about 2s here): the
    sleeper's wait, half of the 40s `tight` would make it wait."""
    root = tmp_path_factory.mktemp("brief")
    home = root / "home"
    home.mkdir()
    with running(home, "--uid-range", f"{UID_LAST + 101}-{UID_LAST + 200}", "--build-timeout", "20s") as started:
        yield started


@pytest.mark.parametrize(
    ("limited", "name", "setup", "said"),
    [
        ("tight", "hog", HOG_SETUP, "stopped by the build memory limit (160M"),
        ("brief", "sleeper", SLEEPER_SETUP, "stopped by the build time limit (20s"),
    ],
)
def test_a_build_over_its_limit_fails_naming_it(
    request: pytest.FixtureRequest, tmp_path: Path, limited: str, name: str, setup: str, said: str
) -> None:
    daemon: Daemon = request.getfixturevalue(limited)
    app = write_app(tmp_path, name, {"roost.toml": HANDLER, "main.py": "def handler(request):\n    return 'v1'\n"})
    pushed(daemon, app)
    sdist(app, name, {"setup.py": setup})
    (app / "requirements.txt").write_text(f"./{name}-0.1.tar.gz\n")
    code, out, err = push(daemon, app)
    assert code != 0, out + err
    flag = "--build-memory" if "memory" in said else "--build-timeout"
    assert said in out + err and flag in out + err, out + err
    assert get(daemon, f"{name}.localhost").text == "v1"
    wait_until("no build process left", lambda: not leftover_builds(daemon.home) or None, timeout=30)


def test_no_build_sandbox_says_so_and_builds_as_the_daemon(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with running(home, "--no-build-sandbox") as daemon:
        line = next((line for line in daemon.output().splitlines() if "builds:" in line), "")
        assert "not sandboxed (--no-build-sandbox)" in line, daemon.output()[-2000:]
        setup = "import os, sys\nprint('BUILT-AS', os.getuid(), flush=True)\nsys.exit(1)\n"
        app = write_app(
            tmp_path, "plain", {"roost.toml": HANDLER, "main.py": "def handler(request):\n    return 'x'\n"}
        )
        sdist(app, "plain", {"setup.py": setup})
        (app / "requirements.txt").write_text("./plain-0.1.tar.gz\n")
        code, out, err = push(daemon, app)
        assert code != 0 and f"BUILT-AS {os.geteuid()}" in out + err, out + err
