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
    return ".".join(path.relative_to(root).with_suffix("").parts)


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
