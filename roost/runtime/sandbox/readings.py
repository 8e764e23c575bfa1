"""Which host paths each process is read back against, and the read-backs the runtime answers
with: every live instance's, and one build step's. Composes readback.py with what the sandbox
knows of this home (its paths, cgroup root, firewall table); never starts or stops anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from roost.model import InstanceId
from roost.runtime.isolation import Isolation
from roost.runtime.protocol import DeploymentSpec
from roost.runtime.sandbox import firewall
from roost.runtime.sandbox.readback import Vantage, isolation_of, isolation_of_program
from roost.runtime.sandbox.sandbox import SANDBOX_TMP, Sandbox

LIMIT_OTHER_APPS = 3  # other apps' folders probed per process: enough to show they are out of sight
TIMEOUT_BUILD_STEP = 10.0  # a build step shows its program within this, or is not read back
Live = tuple[InstanceId, int, DeploymentSpec]  # an instance, its pid, its deployment


def vantage(sandbox: Sandbox, own: Sequence[tuple[str, Path]], app: str, running: Iterable[DeploymentSpec]) -> Vantage:
    """What a process of `app` is read back against: its `own` folders (code, venv, build dir),
    /tmp, the home and its secrets, and a few other running apps' folders."""
    home = sandbox.home
    paths = [
        *own,
        ("tmp", SANDBOX_TMP),
        ("home", home),
        ("store", home / "roost.db"),
        ("secret key", home / "secret.key"),
    ]
    others = sorted({spec.app: spec.code_dir.parent.parent for spec in running if spec.app != app}.items())
    paths += [(f"app {name}", folder) for name, folder in others[:LIMIT_OTHER_APPS]]
    table = sandbox.facilities.firewall
    return Vantage(tuple(paths), sandbox.settings.cgroup_root, table, firewall.nft_binary() if table else None)


async def read_instances(
    sandbox: Sandbox, live: Iterable[Live], running: Sequence[DeploymentSpec]
) -> dict[InstanceId, Isolation]:
    """The read-back of each `live` instance still running (see Runtime.isolation)."""
    targets = {
        instance: (pid, vantage(sandbox, (("code", spec.code_dir), ("venv", spec.venv_dir)), spec.app, running))
        for instance, pid, spec in live
    }
    return await isolation_of(targets)


async def read_build_step(
    sandbox: Sandbox, pid: int, argv: Sequence[str], app: str, build_dir: Path, running: Sequence[DeploymentSpec]
) -> Isolation | None:
    """The read-back of one running build step (see Runtime.isolation_of_build)."""
    return await isolation_of_program(
        pid, argv, vantage(sandbox, (("build dir", build_dir),), app, running), TIMEOUT_BUILD_STEP
    )
