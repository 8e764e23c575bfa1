"""Guessing how to run a folder of Python code: for `roost init` and for a push
that names neither `entrypoint` nor `command`. Reads files; runs nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LIMIT_FILE_BYTES = 512 * 1024
SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", "node_modules", "tests", "test", ".roost-home"}
FRAMEWORKS = (
    ("FastAPI", re.compile(r"^(\w+)\s*(?::\s*[\w.\[\]]+\s*)?=\s*(?:fastapi\.)?FastAPI\(", re.M)),
    ("Starlette", re.compile(r"^(\w+)\s*(?::\s*[\w.\[\]]+\s*)?=\s*(?:starlette\.applications\.)?Starlette\(", re.M)),
    ("Flask", re.compile(r"^(\w+)\s*(?::\s*[\w.\[\]]+\s*)?=\s*(?:flask\.)?Flask\(", re.M)),
)
DJANGO_WSGI = re.compile(r"^(\w+)\s*=\s*get_wsgi_application\(", re.M)
HANDLER = re.compile(r"^def (handler)\s*\(\s*\w+\s*\)", re.M)
SCRIPTS = ("main.py", "app.py", "server.py", "run.py")
FACTORY = re.compile(r"^def (create_app|make_app)\s*\(", re.M)


@dataclass(frozen=True, slots=True)
class Guess:
    """What Roost would run: an entrypoint or a command, and why it thinks so."""

    framework: str
    entrypoint: str | None
    command: str | None
    reason: str


def _python_files(root: Path) -> list[Path]:
    found: list[Path] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if any(part in SKIP_DIRS or part.startswith(".") for part in relative.parts[:-1]):
            continue
        if len(relative.parts) <= 3 and path.stat().st_size <= LIMIT_FILE_BYTES:
            found.append(path)
    found.sort(key=lambda p: (len(p.relative_to(root).parts), p.name not in SCRIPTS, str(p)))
    return found


def _module(root: Path, path: Path) -> str:
    """The import name of `path`: a package's `__init__.py` is the package itself."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def guess(root: Path) -> Guess | None:
    """The most likely way to serve the app in `root`, or None."""
    files = _python_files(root)
    texts = {path: path.read_text(errors="replace") for path in files}
    for framework, pattern in FRAMEWORKS:
        for path, text in texts.items():
            if match := pattern.search(text):
                entry = f"{_module(root, path)}:{match.group(1)}"
                return Guess(framework, entry, None, f"{path.relative_to(root)} creates a {framework} app")
    for path, text in texts.items():
        if path.name == "wsgi.py" and (match := DJANGO_WSGI.search(text)):
            entry = f"{_module(root, path)}:{match.group(1)}"
            return Guess("Django", entry, None, f"{path.relative_to(root)} defines the WSGI application")
    for path, text in texts.items():
        if match := HANDLER.search(text):
            entry = f"{_module(root, path)}:{match.group(1)}"
            return Guess("handler", entry, None, f"{path.relative_to(root)} defines handler(request)")
    for name in SCRIPTS:
        if (root / name).is_file():
            return Guess("command", None, f"python {name}", f"{name} is a script; it must listen on $PORT")
    return None


def factory_note(root: Path) -> str | None:
    """A hint for a Flask app built by a factory (`def create_app(`) and never bound at module level.

    Roost's runner serves an object, it calls no factory; so the guess cannot be the factory,
    and the user is told the one line that makes it servable.
    """
    for path in _python_files(root):
        text = path.read_text(errors="replace")
        if "flask" in text.lower() and (match := FACTORY.search(text)):
            name, module = match.group(1), _module(root, path)
            return (
                f"{path.relative_to(root)} builds a Flask app with {name}(), which Roost does not call: "
                f'add `app = {name}()` at the end of it and set entrypoint = "{module}:app"'
            )
    return None


PORT_MENTION = re.compile(r"\$\{?PORT\b")
READS_PORT = re.compile(r"\bPORT\b")
PORT_READERS = ("gunicorn",)  # servers that bind $PORT on their own when no address is given


def port_warning(command: str, code_reads_port: bool) -> str | None:
    """A warning for a command that will likely never listen on $PORT, or None.

    Fine: the command mentions `$PORT` or `${PORT}`, or the app's code reads PORT itself
    (`python server.py` with `os.environ["PORT"]`), or the server reads it (gunicorn).

    >>> port_warning("gunicorn main:app --bind 127.0.0.1:${PORT}", False) is None
    True
    >>> port_warning("python -m http.server", False)[:68]
    'the command never mentions $PORT (or ${PORT}) and no file of the app'
    """
    if PORT_MENTION.search(command) or code_reads_port:
        return None
    words = command.split()
    program = words[0].rsplit("/", 1)[-1] if words else ""
    if program in PORT_READERS:
        return None
    return (
        "the command never mentions $PORT (or ${PORT}) and no file of the app reads PORT: Roost sends requests "
        "to $PORT only, so the build check will fail; pass it as the server wants it "
        "(`--port $PORT`, `--bind 127.0.0.1:$PORT`, `python -m http.server $PORT`)"
    )


def code_reads_port(root: Path) -> bool:
    """Whether any Python file or shell script of the app mentions PORT (reads it, probably)."""
    scripts = [p for p in root.glob("*.sh") if p.stat().st_size <= LIMIT_FILE_BYTES]
    return any(READS_PORT.search(path.read_text(errors="replace")) for path in [*_python_files(root), *scripts])
