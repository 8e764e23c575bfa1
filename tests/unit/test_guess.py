from pathlib import Path

import pytest

from roost.guess import guess


def make(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "framework", "entrypoint", "command"),
    [
        ({"main.py": "from fastapi import FastAPI\napp = FastAPI()\n"}, "FastAPI", "main:app", None),
        (
            {"api/server.py": "import fastapi\napi: fastapi.FastAPI = fastapi.FastAPI(title='x')\n"},
            "FastAPI",
            "api.server:api",
            None,
        ),
        (
            {"web.py": "from starlette.applications import Starlette\napplication = Starlette()\n"},
            "Starlette",
            "web:application",
            None,
        ),
        ({"app.py": "from flask import Flask\napp = Flask(__name__)\n"}, "Flask", "app:app", None),
        (
            {
                "manage.py": "",
                "site/wsgi.py": "from django.core.wsgi import get_wsgi_application\n"
                "application = get_wsgi_application()\n",
            },
            "Django",
            "site.wsgi:application",
            None,
        ),
        ({"fn.py": "def handler(request):\n    return 'hi'\n"}, "handler", "fn:handler", None),
        ({"server.py": "print('listening')\n"}, "command", None, "python server.py"),
    ],
)
def test_guesses(
    tmp_path: Path, files: dict[str, str], framework: str, entrypoint: str | None, command: str | None
) -> None:
    found = guess(make(tmp_path, files))
    assert found is not None
    assert (found.framework, found.entrypoint, found.command) == (framework, entrypoint, command)
    assert found.reason


def test_nothing_to_guess(tmp_path: Path) -> None:
    assert guess(make(tmp_path, {"README.md": "hi", "lib.py": "X = 1\n"})) is None


def test_venv_and_tests_are_ignored(tmp_path: Path) -> None:
    found = guess(
        make(
            tmp_path,
            {
                ".venv/lib/site.py": "from flask import Flask\napp = Flask(__name__)\n",
                "tests/conftest.py": "from flask import Flask\napp = Flask(__name__)\n",
                "server.py": "",
            },
        )
    )
    assert found is not None
    assert found.command == "python server.py"
