"""Which file decides a deployment's dependencies (`uv.lock` with pyproject.toml, else
`[project].dependencies`, else requirements.txt, else none) and the venv cache key. Runs no process.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from roost.errors import BuildFailed

RECIPE = "roost-venv-1"  # bump when the way a venv is built changes: every key changes with it
_INCLUDE_RE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)(?:\s+|=)(\S+)")
_LOCAL_REQUIREMENT_RE = re.compile(r"^\s*(?:-e\b|--editable\b|\.|/|file:)|\bfile:|@\s*\.{0,2}/")
_LOCAL_LOCK_SOURCE_RE = re.compile(r'source\s*=\s*\{\s*(?:editable|directory|path)\s*=\s*"(?!\.")')


class DependencyKind(StrEnum):
    LOCK = "uv.lock"
    PYPROJECT = "pyproject.toml"
    REQUIREMENTS = "requirements.txt"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Dependencies:
    """What an app's code asks to have installed.

    `fingerprint` is the content that decides the install (the venv cache key
    hashes it); `requirements` holds pyproject's `[project].dependencies`;
    `uses_local_code` is true when a requirement points into the app's own
    folder, so the venv must follow the code and not only the files.
    """

    kind: DependencyKind
    fingerprint: bytes = b""
    requirements: tuple[str, ...] = ()
    uses_local_code: bool = False

    @property
    def source(self) -> str:
        return "no dependency file" if self.kind is DependencyKind.NONE else self.kind.value


def find_dependencies(code_dir: Path) -> Dependencies:
    """Decide from the files in `code_dir`. Raises BuildFailed for an unreadable pyproject.toml."""
    pyproject_path = code_dir / "pyproject.toml"
    pyproject = _read_pyproject(pyproject_path) if pyproject_path.is_file() else None
    if pyproject is not None and (code_dir / "uv.lock").is_file():
        lock = (code_dir / "uv.lock").read_bytes()
        local = _LOCAL_LOCK_SOURCE_RE.search(lock.decode("utf-8", "replace")) is not None
        return Dependencies(DependencyKind.LOCK, lock + b"\0" + _canonical(_without_roost(pyproject)), (), local)
    project = pyproject.get("project") if pyproject is not None else None
    if isinstance(project, dict) and "dependencies" in project:
        requirements = _project_dependencies(project["dependencies"])
        local = any(_LOCAL_REQUIREMENT_RE.search(r) for r in requirements)
        return Dependencies(DependencyKind.PYPROJECT, _canonical(list(requirements)), requirements, local)
    requirements_path = code_dir / "requirements.txt"
    if requirements_path.is_file():
        fingerprint, local = _requirements_fingerprint(requirements_path, code_dir)
        return Dependencies(DependencyKind.REQUIREMENTS, fingerprint, (), local)
    return Dependencies(DependencyKind.NONE)


def venv_key(
    dependencies: Dependencies, python_version: str, runner_requirements: Sequence[str], source_digest: str = ""
) -> str:
    """sha256 hex over the dependency files, the interpreter's `sys.version` and the runner's requirements.

    When the requirements point into the app's own code, the archive's digest
    is part of the key too.
    """
    material = {
        "recipe": RECIPE,
        "kind": dependencies.kind.value,
        "fingerprint": hashlib.sha256(dependencies.fingerprint).hexdigest(),
        "python": python_version,
        "runner": sorted(runner_requirements),
        "source": source_digest if dependencies.uses_local_code else "",
    }
    return hashlib.sha256(_canonical(material)).hexdigest()


def _read_pyproject(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise BuildFailed(f"pyproject.toml is not valid TOML: {exc}", hint="fix the syntax at the line named") from exc


def _without_roost(pyproject: dict[str, Any]) -> dict[str, Any]:
    """pyproject.toml less `[tool.roost]`: changing Roost's settings must not rebuild the venv."""
    tool = pyproject.get("tool")
    if not isinstance(tool, dict) or "roost" not in tool:
        return pyproject
    return {**pyproject, "tool": {k: v for k, v in tool.items() if k != "roost"}}


def _project_dependencies(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BuildFailed(
            "pyproject.toml: [project].dependencies is not a list of strings",
            hint='write it as dependencies = ["flask>=3", "requests"]',
        )
    for item in value:
        if item.lstrip().startswith("-") or "\n" in item or not item.strip():
            raise BuildFailed(
                f"pyproject.toml: {item!r} in [project].dependencies is not a requirement",
                hint='each entry is a PEP 508 requirement, like "flask>=3"',
            )
    return tuple(item.strip() for item in value)


def _requirements_fingerprint(path: Path, code_dir: Path) -> tuple[bytes, bool]:
    """requirements.txt with every file it pulls in by -r/-c, and whether it names local code."""
    chunks: list[bytes] = []
    local = False
    pending, seen = [path], set[Path]()
    root = code_dir.resolve()
    while pending:
        current = pending.pop(0).resolve()
        if not current.is_relative_to(root):
            raise BuildFailed(
                f"requirements.txt pulls in {current}, outside the app folder",
                hint="keep every file named by -r or -c inside the app folder, with a relative path",
            )
        if current in seen or not current.is_file():
            continue
        seen.add(current)
        content = current.read_bytes()
        chunks.append(str(current.relative_to(root)).encode() + b"\0" + content)
        for line in content.decode("utf-8", "replace").splitlines():
            include = _INCLUDE_RE.match(line)
            if include:
                pending.append(current.parent / include.group(1))
            elif _LOCAL_REQUIREMENT_RE.search(line.split(" #")[0]):
                local = True
    return b"\0\0".join(chunks), local


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


__all__ = ["RECIPE", "Dependencies", "DependencyKind", "find_dependencies", "venv_key"]
