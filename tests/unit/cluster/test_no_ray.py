"""Single-machine Roost never loads Ray: importing the CLI and the daemon, and running commands,
leaves `ray` and `roost.cluster` unimported. Checked in a subprocess with a stand-in `ray`
package first on its path that marks a file when imported (and the check is shown to see a
cluster command that does import it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

STAND_IN = """import os, pathlib
pathlib.Path(os.environ["RAY_IMPORTED_MARK"]).write_text("imported")
"""
RAYLET = """class GcsClient:
    def __init__(self, address):
        self.address = address
"""
SINGLE_MACHINE = """
import sys
from click.testing import CliRunner
import roost.cli, roost.cli.serve, roost.daemon, roost.api
from roost.cli.main import cli
from roost.daemon import Daemon
from roost.serve_settings import ServeSettings
Daemon(ServeSettings(home=__import__("pathlib").Path("unused")), print)
for args in (["--help"], ["serve", "--help"], ["nodes", "--help"], ["node", "join", "--help"]):
    assert CliRunner().invoke(cli, args).exit_code == 0, args
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "ray" or m.startswith("roost.cluster"))
print(loaded)
"""
CLUSTER_READER = """
from pathlib import Path
from roost.cluster.gcs import GcsReader
reader = GcsReader("10.0.0.1:6379", Path("token"))
from roost.cluster.gcs import _ray_client
print(_ray_client(reader.address, reader.token_file).address)
"""


def run_with_stand_in(tmp_path: Path, code: str) -> tuple[str, bool]:
    package = tmp_path / "path" / "ray"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(STAND_IN)
    (package / "_raylet.py").write_text(RAYLET)
    mark = tmp_path / "ray-imported"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "path"), "RAY_IMPORTED_MARK": str(mark)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1], mark.exists()


def test_the_cli_and_the_daemon_load_no_ray(tmp_path: Path) -> None:
    loaded, marked = run_with_stand_in(tmp_path, SINGLE_MACHINE)
    assert (loaded, marked) == ("[]", False)


def test_the_check_sees_a_cluster_command_load_ray(tmp_path: Path) -> None:
    address, marked = run_with_stand_in(tmp_path, CLUSTER_READER)
    assert (address, marked) == ("10.0.0.1:6379", True)
