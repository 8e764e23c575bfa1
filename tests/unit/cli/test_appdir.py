"""The app of a folder: its roost.toml's name, the folder's name, or a parent's app."""

from pathlib import Path

import pytest

from roost.cli.appdir import app_of_folder, resolve_app
from roost.errors import UsageError


def test_the_name_in_roost_toml_wins(tmp_path: Path) -> None:
    (tmp_path / "roost.toml").write_text('name = "shop"\nentrypoint = "app:app"\n')
    found = app_of_folder(tmp_path)
    assert found is not None
    assert (found.name, found.source) == ("shop", str(tmp_path / "roost.toml"))


def test_a_subfolder_belongs_to_the_parent_app_and_tool_roost_counts(tmp_path: Path) -> None:
    app = tmp_path / "My_Blog"
    (app / "static" / "css").mkdir(parents=True)
    (app / "pyproject.toml").write_text('[project]\nname = "blog"\n\n[tool.roost]\nentrypoint = "blog:app"\n')
    found = app_of_folder(app / "static" / "css")
    assert found is not None
    assert found.name == "my-blog"  # as `roost push` names it: the folder's name, made valid


def test_a_pyproject_without_tool_roost_is_no_app(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "lib"\n')
    assert app_of_folder(tmp_path) is None


def test_no_app_and_no_name_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no roost\.toml names one in this folder"):
        resolve_app(None, tmp_path)
    assert resolve_app("given", tmp_path) == "given"
