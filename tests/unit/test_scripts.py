"""The shell scripts `make` runs call Python snippets (`python -c 'from roost.x import y; ...'`): each
must still import after a rename. `make serve` once ran `roost serve --home ""` because
scripts/serve.sh imported a module that had been renamed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
IMPORT = re.compile(r"from (roost[\w.]*) import ([\w, ]+)")


def test_every_roost_import_in_the_scripts_resolves() -> None:
    found = [m for script in sorted(SCRIPTS.glob("*.sh")) for m in IMPORT.finditer(script.read_text())]
    assert found, "no roost imports found in scripts/*.sh: the pattern no longer matches them"
    for match in found:
        module, names = match.group(1), match.group(2)
        code = f"from {module} import {names}"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{code}: {result.stderr.strip().splitlines()[-1]}"
