"""Builder with real uv installs from the package index: venvs, the cache, locks, failures, the log.

One uv cache is shared by the whole session so each package downloads once.
"""

import asyncio
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from roost.builder import Builder, BuildOutput, BuildRequest
from roost.builder.process import uv_binary
from roost.errors import BuildFailed, UsageError
from roost.pack import pack_app
from roost.runtime.protocol import RUNNER_REQUIREMENTS

LOCKED_IDNA = "3.6"


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def builder(home: Path, uv_cache: Path) -> Builder:
    return Builder(home, RUNNER_REQUIREMENTS, cache_dir=uv_cache)


def make_app(root: Path, files: dict[str, str]) -> Path:
    for name, text in {"main.py": "def app(request):\n    return 'hi'\n", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def packed(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    app = make_app(tmp_path / name, files)
    return pack_app(app, tmp_path / f"{name}.tar.gz").path


def venv_run(output: BuildOutput, code: str) -> str:
    python = output.venv_dir / "bin" / "python"
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=output.code_dir, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def lock_app(app: Path, uv_cache: Path) -> None:
    env = {**os.environ, "UV_CACHE_DIR": str(uv_cache), "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    argv = [uv_binary(), "lock", "--quiet", "--python", sys.executable]
    subprocess.run(argv, cwd=app, env=env, check=True, capture_output=True)


def leftovers(home: Path) -> list[str]:
    return sorted(
        str(p.relative_to(home)) for p in home.rglob(".*") if p.name.startswith((".tmp-", ".code-", ".trash"))
    )


async def test_a_requirements_app_gets_its_venv_compiled(builder: Builder, tmp_path: Path) -> None:
    log = Log()
    archive = packed(tmp_path, "app", {"requirements.txt": "six\n"})
    output = await builder.build(BuildRequest("hello", "aaaa0001", archive), log)
    assert output.code_dir == builder.home / "deployments" / "hello" / "aaaa0001" / "code"
    assert output.venv_dir == builder.home / "venvs" / output.venv_key
    assert not output.reused_venv
    assert venv_run(output, "import six, uvicorn, a2wsgi; print(six.__name__)") == "six"
    assert list(output.venv_dir.glob("lib/python*/site-packages/__pycache__/six.cpython-*.pyc"))
    assert list((output.code_dir / "__pycache__").glob("main.cpython-*.pyc"))
    assert [step.name for step in output.steps] == ["unpack", "dependencies", "compile"]
    assert "==> installing dependencies with uv (requirements.txt)" in log.lines
    assert any("six" in line for line in log.lines), "uv's own output reaches the log"
    assert log.lines[-1].startswith("==> done in ")
    assert leftovers(builder.home) == []


async def test_a_venv_survives_its_move_into_the_cache(builder: Builder, tmp_path: Path) -> None:
    output = await builder.build(BuildRequest("hello", "aaaa0002", packed(tmp_path, "app", {})), Log())
    result = subprocess.run(
        [output.venv_dir / "bin" / "uvicorn", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "uvicorn" in result.stdout, result.stderr


async def test_unchanged_dependencies_reuse_the_venv(builder: Builder, tmp_path: Path) -> None:
    first = await builder.build(
        BuildRequest("hello", "bbbb0001", packed(tmp_path, "v1", {"requirements.txt": "six\n"})), Log()
    )
    log = Log()
    changed_code = {"requirements.txt": "six\n", "main.py": "def app(request):\n    return 'changed'\n"}
    second = await builder.build(BuildRequest("hello", "bbbb0002", packed(tmp_path, "v2", changed_code)), log)
    assert second.reused_venv and second.venv_dir == first.venv_dir and second.venv_key == first.venv_key
    assert second.code_dir != first.code_dir
    assert "changed" in (second.code_dir / "main.py").read_text()
    assert f"==> reusing the virtual environment {first.venv_key[:12]} (requirements.txt unchanged)" in log.lines
    assert not any("Resolved" in line or "installing" in line for line in log.lines), "no uv call on the fast path"
    dependencies = {step.name: step.seconds for step in first.steps}["dependencies"]
    reused = {step.name: step.seconds for step in second.steps}["dependencies"]
    assert reused < dependencies / 5


async def test_a_pyproject_app_installs_its_dependencies(builder: Builder, tmp_path: Path) -> None:
    pyproject = '[project]\nname = "app"\nversion = "0.1.0"\ndependencies = ["idna"]\n'
    log = Log()
    output = await builder.build(
        BuildRequest("hello", "cccc0001", packed(tmp_path, "app", {"pyproject.toml": pyproject})), log
    )
    assert "==> installing dependencies with uv (pyproject.toml)" in log.lines
    assert venv_run(output, "import idna, importlib.util; print(importlib.util.find_spec('six') is None)") == "True"


def locked_pyproject(requirement: str) -> str:
    return f'[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = ["{requirement}"]\n'


async def test_a_locked_app_installs_exactly_what_is_locked(builder: Builder, tmp_path: Path, uv_cache: Path) -> None:
    app = make_app(tmp_path / "app", {"pyproject.toml": locked_pyproject(f"idna=={LOCKED_IDNA}")})
    lock_app(app, uv_cache)
    # Loosen the requirement without locking again: a fresh resolve would take the newest idna.
    (app / "pyproject.toml").write_text(locked_pyproject("idna>=3.0"))
    log = Log()
    archive = pack_app(app, tmp_path / "app.tar.gz").path
    output = await builder.build(BuildRequest("hello", "dddd0001", archive), log)
    assert "==> installing dependencies with uv (uv.lock)" in log.lines
    assert venv_run(output, "import idna; print(idna.__version__)") == LOCKED_IDNA
    assert venv_run(output, "import uvicorn; print('ok')") == "ok"
    assert (output.venv_dir / "roost-locked-requirements.txt").read_text().count(f"idna=={LOCKED_IDNA}") == 1


async def test_an_app_without_dependencies_gets_the_runner(builder: Builder, tmp_path: Path) -> None:
    log = Log()
    output = await builder.build(BuildRequest("hello", "eeee0001", packed(tmp_path, "app", {})), log)
    assert "==> installing Roost's runner with uv (no dependency file)" in log.lines
    assert venv_run(output, "import uvicorn, httptools, uvloop, a2wsgi; print('ok')") == "ok"
    again = Log()
    await builder.build(BuildRequest("hello", "eeee0002", packed(tmp_path, "app2", {})), again)
    assert f"==> reusing the virtual environment {output.venv_key[:12]} (no dependency file)" in again.lines


async def test_a_requirement_that_does_not_exist_fails_with_uvs_message(builder: Builder, tmp_path: Path) -> None:
    archive = packed(tmp_path, "app", {"requirements.txt": "foo-does-not-exist-roost-test\n"})
    log = Log()
    with pytest.raises(BuildFailed) as caught:
        await builder.build(BuildRequest("hello", "ffff0001", archive), log)
    message = caught.value.message
    assert "foo-does-not-exist-roost-test" in message
    assert "requirements.txt" in message and "requirements.txt" in caught.value.hint
    assert "No solution found" in message or "not found" in message
    assert "foo-does-not-exist-roost-test" in log.text, "uv's output was streamed to the log"
    assert not (builder.home / "deployments" / "hello" / "ffff0001" / "code").exists()
    assert [p.name for p in (builder.home / "venvs").iterdir() if not p.name.startswith(".")] == []
    assert leftovers(builder.home) == []


async def test_a_hostile_archive_leaves_nothing(builder: Builder, tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("main.py"))
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../../etc"
        tar.addfile(link)
    with pytest.raises(BuildFailed, match="escape"):
        await builder.build(BuildRequest("hello", "gggg0001", archive), Log())
    deployment = builder.home / "deployments" / "hello" / "gggg0001"
    assert not (deployment / "code").exists()
    assert leftovers(builder.home) == []


async def test_racing_builds_of_one_dependency_set_share_one_venv(builder: Builder, tmp_path: Path) -> None:
    files = {"requirements.txt": "idna\nsix\n"}
    first, second = await asyncio.gather(
        builder.build(BuildRequest("hello", "hhhh0001", packed(tmp_path, "a", files)), Log()),
        builder.build(BuildRequest("hello", "hhhh0002", packed(tmp_path, "b", files)), Log()),
    )
    assert first.venv_dir == second.venv_dir
    assert sorted([first.reused_venv, second.reused_venv]) == [False, True]
    assert venv_run(second, "import idna, six; print('ok')") == "ok"
    assert leftovers(builder.home) == []


async def test_builds_beyond_max_parallel_wait_their_turn(home: Path, uv_cache: Path, tmp_path: Path) -> None:
    builder = Builder(home, RUNNER_REQUIREMENTS, cache_dir=uv_cache, max_parallel=1)
    archive = packed(tmp_path, "app", {})
    logs = [Log(), Log()]
    await asyncio.gather(*(builder.build(BuildRequest("hello", f"iiii000{i}", archive), logs[i]) for i in range(2)))
    assert "==> waiting for a free build slot (1 builds running)" in logs[1].lines


async def test_gc_removes_unreferenced_idle_venvs(builder: Builder, tmp_path: Path) -> None:
    output = await builder.build(BuildRequest("hello", "jjjj0001", packed(tmp_path, "app", {})), Log())
    assert await builder.gc_venvs(set()) == [], "a venv used in the last hour is kept"
    hour_ago = time.time() - 7200
    os.utime(output.venv_dir / ".roost-complete", (hour_ago, hour_ago))
    assert await builder.gc_venvs({output.venv_key}) == []
    assert output.venv_dir.exists()
    freed = await builder.gc_venvs(set())
    assert [key for key, _ in freed] == [output.venv_key] and freed[0][1] > 1_000_000
    assert not output.venv_dir.exists()
    assert leftovers(builder.home) == []


async def test_remove_deployment(builder: Builder, tmp_path: Path) -> None:
    output = await builder.build(BuildRequest("hello", "kkkk0001", packed(tmp_path, "app", {})), Log())
    assert await builder.remove_deployment("hello", "kkkk0001") > 0
    assert not output.code_dir.parent.exists()
    assert output.venv_dir.exists(), "venvs go through gc_venvs"


@pytest.mark.parametrize(("app", "deployment"), [("../etc", "aaaa0001"), ("hello", "../../x"), ("hello\n", "aaaa0001")])
async def test_names_that_are_not_roosts_are_refused(
    builder: Builder, tmp_path: Path, app: str, deployment: str
) -> None:
    with pytest.raises(UsageError, match=r"not an app name|not a deployment id"):
        await builder.build(BuildRequest(app, deployment, tmp_path / "none.tar.gz"), Log())


async def test_an_interpreter_that_does_not_exist_fails_the_build(home: Path, uv_cache: Path, tmp_path: Path) -> None:
    builder = Builder(home, RUNNER_REQUIREMENTS, cache_dir=uv_cache, python=str(tmp_path / "no-python"))
    with pytest.raises(BuildFailed, match="no-python") as caught:
        await builder.build(BuildRequest("hello", "llll0001", packed(tmp_path, "app", {})), Log())
    assert caught.value.hint
    assert leftovers(home) == []


async def test_a_cancelled_build_kills_its_process_and_leaves_nothing(
    home: Path, uv_cache: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    stuck = tmp_path / "stuck-python"
    stuck.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 600\n")
    stuck.chmod(0o755)
    builder = Builder(home, RUNNER_REQUIREMENTS, cache_dir=uv_cache, python=str(stuck))
    build = asyncio.create_task(builder.build(BuildRequest("hello", "mmmm0001", packed(tmp_path, "app", {})), Log()))
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the build never started its subprocess"
        await asyncio.sleep(0.01)
    pid = int(pid_file.read_text())
    build.cancel()
    with pytest.raises(asyncio.CancelledError):
        await build
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (home / "deployments" / "hello" / "mmmm0001" / "code").exists()
    assert leftovers(home) == []
