"""`roost info`'s isolation row, from a real read-back of a process this test controls, through
JSON as the API sends it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from roost.cli.isolation import cells
from roost.runtime.sandbox.readback import Vantage, read_isolation


def row_of(pid: int, vantage: Vantage) -> list[str]:
    return cells(json.loads(json.dumps(read_isolation(pid, vantage).to_dict())))


def test_a_plain_process_shows_what_it_lacks_in_red(tmp_path: Path) -> None:
    store = tmp_path / "roost.db"
    store.write_text("")
    vantage = Vantage(paths=(("store", store), ("tmp", Path("/tmp"))))
    child = subprocess.Popen(["/bin/sleep", "30"])
    try:
        uid, seccomp, _cgroup, files, network, _proc = row_of(child.pid, vantage)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert uid == (f"[red]{os.geteuid()} (root)[/]" if os.geteuid() == 0 else str(os.geteuid()))
    assert seccomp == "[red]none[/]"  # started here without a filter
    assert files == "[red]host view, sees store[/]"  # the host's own file, readable by its owner
    assert network == "[red]host, no firewall[/]"  # no table named in the vantage


def test_a_row_says_what_could_not_be_read() -> None:
    assert cells({"identity": None, "seccomp": None}) == ["?"] * 6
