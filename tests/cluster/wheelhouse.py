"""A package index on the namespaced LAN: the namespaces have no way out to pypi.org, so a build
on a node gets the runner's wheels (roost.runtime.RUNNER_REQUIREMENTS) from a folder served over
HTTP on one host, as a cluster's own mirror would serve them. The wheels are downloaded outside
the namespaces, laid out as a simple index (PEP 503: `simple/<name>/<wheel>`, which a directory
listing serves), and named to builds by UV_INDEX_URL, which replaces pypi.org (the build
firewall then lets builds reach it)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from roost.runtime.protocol import RUNNER_REQUIREMENTS
from tests.cluster.netns import Host
from tests.e2e.apps import wait_until

PORT = 8099  # on the run's own private LAN: no other run can hold it
TIMEOUT_DOWNLOAD = 300


def download(dest: Path, requirements: tuple[str, ...] = RUNNER_REQUIREMENTS) -> Path:
    """The wheels of `requirements` and their dependencies, for this interpreter, as a simple
    index under `dest` (dest/simple/<normalized name>/<wheel>)."""
    wheels = dest / "downloaded"
    argv = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", str(wheels), *requirements]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_DOWNLOAD)
    assert done.returncode == 0, done.stdout + done.stderr
    for wheel in wheels.glob("*.whl"):
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
        (dest / "simple" / project).mkdir(parents=True, exist_ok=True)
        wheel.rename(dest / "simple" / project / wheel.name)
    return dest


@contextlib.contextmanager
def served(host: Host, folder: Path) -> Iterator[dict[str, str]]:
    """`folder` served on host:PORT while inside; yields the environment a daemon's builds need."""
    log = folder.with_suffix(".log")
    with log.open("wb") as output:
        proc = subprocess.Popen(
            host.argv([sys.executable, "-u", "-m", "http.server", "--bind", host.address, str(PORT)]),
            cwd=folder,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until("the wheelhouse to listen", lambda: "Serving HTTP" in log.read_text() or None, 30)
        yield {"UV_INDEX_URL": f"http://{host.address}:{PORT}/simple/"}
    finally:
        proc.kill()
        proc.wait(timeout=10)
