"""Which file decides the install, and what changes the venv cache key."""

from pathlib import Path

import pytest

from roost.builder import Dependencies, DependencyKind, find_dependencies, venv_key
from roost.errors import BuildFailed

PYPROJECT = '[project]\nname = "app"\nversion = "0.1.0"\ndependencies = ["six>=1.16"]\n'
ROOST_ONLY = '[tool.roost]\nentrypoint = "main:app"\n'
RUNNER = ("uvicorn>=0.30", "a2wsgi>=1.10")


def make(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def key(root: Path, python: str = "3.11.7 (main)", runner: tuple[str, ...] = RUNNER, source: str = "") -> str:
    return venv_key(find_dependencies(root), python, runner, source)


@pytest.mark.parametrize(
    ("files", "kind"),
    [
        ({"pyproject.toml": PYPROJECT, "uv.lock": "version = 1\n", "requirements.txt": "idna\n"}, DependencyKind.LOCK),
        ({"pyproject.toml": PYPROJECT, "requirements.txt": "idna\n"}, DependencyKind.PYPROJECT),
        ({"pyproject.toml": ROOST_ONLY, "requirements.txt": "idna\n"}, DependencyKind.REQUIREMENTS),
        ({"uv.lock": "version = 1\n", "requirements.txt": "idna\n"}, DependencyKind.REQUIREMENTS),
        ({"requirements.txt": "idna\n"}, DependencyKind.REQUIREMENTS),
        ({"pyproject.toml": ROOST_ONLY}, DependencyKind.NONE),
        ({"main.py": ""}, DependencyKind.NONE),
    ],
)
def test_the_deciding_file(tmp_path: Path, files: dict[str, str], kind: DependencyKind) -> None:
    assert find_dependencies(make(tmp_path, files)).kind is kind


def test_pyproject_dependencies_are_read(tmp_path: Path) -> None:
    found = find_dependencies(make(tmp_path, {"pyproject.toml": PYPROJECT}))
    assert found == Dependencies(DependencyKind.PYPROJECT, found.fingerprint, ("six>=1.16",), False)
    assert found.source == "pyproject.toml"


@pytest.mark.parametrize(
    "text",
    [
        "[project\n",
        '[project]\ndependencies = "six"\n',
        '[project]\ndependencies = ["--index-url=http://elsewhere", "six"]\n',
    ],
)
def test_a_broken_pyproject_fails_the_build(tmp_path: Path, text: str) -> None:
    with pytest.raises(BuildFailed) as caught:
        find_dependencies(make(tmp_path, {"pyproject.toml": text}))
    assert "pyproject.toml" in caught.value.message and caught.value.hint


def test_the_key_is_stable_and_follows_what_decides_the_install(tmp_path: Path) -> None:
    app = make(tmp_path / "app", {"requirements.txt": "six\n", "main.py": "print(1)\n"})
    first = key(app)
    assert len(first) == 64 and first == key(app)
    make(app, {"main.py": "print(2)\n"})
    assert key(app) == first, "code changes keep the venv"
    assert key(app, python="3.12.1 (main)") != first
    assert key(app, runner=(*RUNNER, "httptools")) != first
    assert key(app, runner=tuple(reversed(RUNNER))) == first
    make(app, {"requirements.txt": "six==1.16.0\n"})
    assert key(app) != first


def test_files_pulled_in_by_requirements_are_part_of_the_key(tmp_path: Path) -> None:
    app = make(tmp_path / "app", {"requirements.txt": "-r base.txt\n-c constraints.txt\n", "base.txt": "six\n"})
    make(app, {"constraints.txt": "six<2\n"})
    first = key(app)
    make(app, {"constraints.txt": "six<1.17\n"})
    second = key(app)
    make(app, {"base.txt": "six\nidna\n"})
    assert len({first, second, key(app)}) == 3


def test_roost_settings_in_pyproject_do_not_change_a_locked_key(tmp_path: Path) -> None:
    app = make(tmp_path / "app", {"pyproject.toml": PYPROJECT + ROOST_ONLY, "uv.lock": "version = 1\n"})
    first = key(app)
    make(app, {"pyproject.toml": PYPROJECT + '[tool.roost]\nentrypoint = "other:app"\n'})
    assert key(app) == first
    make(app, {"uv.lock": "version = 1\n# relocked\n"})
    assert key(app) != first


@pytest.mark.parametrize(
    "files",
    [
        {"requirements.txt": "-e ./mylib\n"},
        {"requirements.txt": "./mylib\n"},
        {"requirements.txt": "mylib @ file:///srv/mylib\n"},
        {"pyproject.toml": '[project]\nname = "a"\nversion = "1"\ndependencies = ["mylib @ ./mylib"]\n'},
        {
            "pyproject.toml": PYPROJECT,
            "uv.lock": '[[package]]\nname = "mylib"\nsource = { editable = "packages/mylib" }\n',
        },
    ],
)
def test_requirements_on_local_code_key_on_the_source_too(tmp_path: Path, files: dict[str, str]) -> None:
    app = make(tmp_path / "app", files)
    assert find_dependencies(app).uses_local_code
    assert key(app, source="sha256:" + "1" * 64) != key(app, source="sha256:" + "2" * 64)


def test_plain_requirements_do_not_key_on_the_source(tmp_path: Path) -> None:
    app = make(tmp_path / "app", {"requirements.txt": "six\n--index-url https://pypi.org/simple\n"})
    assert not find_dependencies(app).uses_local_code
    assert key(app, source="sha256:" + "1" * 64) == key(app, source="sha256:" + "2" * 64)


@pytest.mark.parametrize("line", ["-r /etc/passwd", "-c ../../secrets.txt", "--requirement=../outside.txt"])
def test_requirements_may_not_pull_in_files_outside_the_app(tmp_path: Path, line: str) -> None:
    app = make(tmp_path / "app", {"requirements.txt": f"six\n{line}\n"})
    with pytest.raises(BuildFailed, match="outside the app folder"):
        find_dependencies(app)
