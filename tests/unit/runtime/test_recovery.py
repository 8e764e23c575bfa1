"""Recovery after a daemon crash: what an interrupted build left on disk goes, and nothing else."""

from pathlib import Path

from roost.builder import Builder
from roost.control import Control, Urls
from roost.registry import Registry
from roost.runtime import RUNNER_REQUIREMENTS
from roost.store import Store
from tests.unit.runtime.conftest import Harness


def half_built(home: Path) -> tuple[Path, Path, Path]:
    """A finished deployment's code, and the staging and trash trees of builds the daemon died in."""
    deployment = home / "deployments" / "hello" / "a1b2c3d4"
    code = deployment / "code"
    staging = deployment / ".code-0badf00d"
    trash = deployment / ".trash-code-12345678"
    for folder in (code, staging / "pkg", trash):
        folder.mkdir(parents=True)
        (folder / "main.py").write_text("app = None\n")
    return code, staging, trash


async def test_recovery_removes_what_interrupted_builds_left(harness: Harness, tmp_path: Path) -> None:
    home = tmp_path / "roost"
    code, staging, trash = half_built(home)
    store = await Store.open(home / "roost.db")
    try:
        control = Control(
            store,
            Registry(home / "blobs"),
            Builder(home, RUNNER_REQUIREMENTS),
            harness.runtime,
            harness.logs,
            home,
            Urls(domain="localhost", port=8080, scheme="http"),
        )
        await control.recover()
    finally:
        await store.close()
    assert not staging.exists() and not trash.exists()
    assert (code / "main.py").read_text() == "app = None\n"  # a finished build is kept
    assert sorted(p.name for p in code.parent.iterdir()) == ["code"]


async def test_removing_leftovers_on_a_fresh_home_finds_nothing(tmp_path: Path) -> None:
    assert await Builder(tmp_path, RUNNER_REQUIREMENTS).remove_leftovers() == []
