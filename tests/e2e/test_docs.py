"""The docs cannot drift: every command of the README's console blocks runs against a real
daemon, the roost.toml reference validates, and docs/cli.md matches the commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from roost.cli.reference import reference
from roost.config import load_app_config
from tests.e2e.harness import REPO, base_env, running

README = (REPO / "README.md").read_text()


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", README, flags=re.S | re.M)


def console_commands() -> list[str]:
    return [line[2:] for block in blocks("console") for line in block.splitlines() if line.startswith("$ ")]


def test_every_walkthrough_command_runs(tmp_path: Path) -> None:
    commands = console_commands()
    assert len(commands) >= 20, commands
    work = tmp_path / "work"
    shutil.copytree(REPO / "examples", work / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".gitignore", work / ".gitignore")  # the checkout's own, as a user's clone has it
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "the examples as shipped")
    home = tmp_path / "home"
    home.mkdir()
    with running(home) as daemon:
        port = str(daemon.edge_port)
        script = ["set -euo pipefail"]
        for command in commands:
            command = command.replace(":8080", f":{port}").replace("curl -s ", "curl -sSf --max-time 30 ")
            script += [f"echo '+ {command}' | sed 's/%/%%/g' >&2", command]
        env = {**base_env(home), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        result = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{daemon.output()}"
    assert "Hello from Flask" in result.stdout
    assert "from FastAPI" in result.stdout
    assert "not-in-any-log" not in result.stdout
    assert git(work, "status", "--porcelain", "--untracked-files=all") == "", "the walk-through left changes behind"


def git(work: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=roost", "-c", "user.email=roost@localhost", *args]
    return subprocess.run(command, cwd=work, capture_output=True, text=True, check=True, timeout=60).stdout


def test_the_roost_toml_reference_is_valid(tmp_path: Path) -> None:
    (example,) = [block for block in blocks("toml") if "[limits]" in block]
    (tmp_path / "roost.toml").write_text(example)
    config = load_app_config(tmp_path)
    assert config.entrypoint == "main:app"
    assert config.crons[0].name == "nightly-report"
    assert config.keep == 10
    assert [(p.name, p.count) for p in config.processes] == [("worker", 1)]


def test_the_cli_reference_matches_the_commands() -> None:
    expected = reference()
    written = (REPO / "docs" / "cli.md").read_text()
    assert written == expected, "docs/cli.md is stale: run `.venv/bin/python -m roost.cli.reference > docs/cli.md`"
    for name in re.findall(r"^roost (\w+)", README, flags=re.M):
        assert f"## `roost {name}`" in written, name
