import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from roost.cli.init import init
from roost.cli.main import cli
from roost.config import read_toml, validate
from roost.guess import code_reads_port, guess, port_warning


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


def init_in(folder: Path) -> tuple[str, dict[str, object]]:
    """Run `roost init` in `folder`: what it printed, and the roost.toml it wrote, parsed."""
    result = CliRunner().invoke(init, [str(folder)], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output, validate(read_toml(folder / "roost.toml"), "roost.toml")


def test_init_says_what_it_guessed_and_writes_it(tmp_path: Path) -> None:
    out, settings = init_in(make(tmp_path / "shop", {"app.py": "from flask import Flask\napp = Flask(__name__)\n"}))
    assert f"wrote {tmp_path / 'shop' / 'roost.toml'}" in out
    assert "guessed a Flask app: entrypoint = app:app (app.py creates a Flask app)" in out
    assert "note:" not in out
    assert settings["name"] == "shop" and settings["entrypoint"] == "app:app"


def test_init_says_how_to_serve_a_flask_factory(tmp_path: Path) -> None:
    factory = "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n"
    out, settings = init_in(make(tmp_path / "factory", {"web/__init__.py": factory, "app.py": "print('hi')\n"}))
    assert "guessed a command app: command = python app.py (app.py is a script; it must listen on $PORT)" in out
    assert "builds a Flask app with create_app(), which Roost does not call: add `app = create_app()`" in out
    assert 'set entrypoint = "web:app"' in out
    assert settings["command"] == "python app.py"


def test_init_says_when_it_could_not_guess(tmp_path: Path) -> None:
    out, settings = init_in(make(tmp_path / "empty", {"lib.py": "X = 1\n"}))
    assert "could not guess how to run it: set `entrypoint` or `command` in roost.toml" in out
    assert "entrypoint" not in settings and "command" not in settings


@pytest.mark.parametrize(
    ("command", "files", "warned"),
    [
        ("python -m http.server", {}, True),
        ("uvicorn main:app --port 8000", {"main.py": "app = object()\n"}, True),
        ("python -m http.server $PORT", {}, False),
        ("gunicorn main:app --bind 127.0.0.1:${PORT}", {}, False),
        ("python server.py", {"server.py": "import os\nport = int(os.environ['PORT'])\n"}, False),
        ("./start.sh", {"start.sh": 'exec uvicorn main:app --port "$PORT"\n'}, False),
        ("gunicorn main:app", {}, False),  # gunicorn binds $PORT by itself
        ("python server.py", {"server.py": "REPORTER = 1\n"}, True),  # a word that merely contains PORT
    ],
)
def test_check_warns_when_a_command_never_gets_the_port(
    tmp_path: Path, command: str, files: dict[str, str], warned: bool
) -> None:
    app = make(tmp_path / "app", {"roost.toml": f"command = {json.dumps(command)}\n", **files})
    assert (port_warning(command, code_reads_port(app)) is not None) is warned
    result = CliRunner().invoke(cli, ["check", str(app)])
    assert result.exit_code == 0, result.output
    assert ("warning: the command never mentions $PORT" in result.stderr) is warned
    assert "ok:" in result.stdout


def test_check_says_nothing_about_ports_for_an_entrypoint(tmp_path: Path) -> None:
    app = make(tmp_path / "app", {"roost.toml": 'entrypoint = "main:app"\n', "main.py": "app = 1\n"})
    result = CliRunner().invoke(cli, ["check", str(app)])
    assert result.exit_code == 0
    assert "warning" not in result.stderr
