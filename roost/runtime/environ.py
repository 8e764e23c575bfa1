"""The explicit environment of every process the runtime starts: built from nothing, never
from the daemon's own environment. Pure functions."""

from __future__ import annotations

from pathlib import Path

from roost.runtime.protocol import DeploymentSpec

BASE_PATH = "/usr/bin:/bin"
BASE = {
    "LANG": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "MALLOC_ARENA_MAX": "2",
}
OWN_NAMES = ("PORT", "TMPDIR", "HOME", "ROOST_APP", "ROOST_DEPLOYMENT", "ROOST_INSTANCE")
"""Names the runtime sets itself: the app's env cannot override them."""


def make_tmpdir(path: Path) -> None:
    """An instance's own TMPDIR (and HOME), private to its user: a microsecond mkdir, fine on the loop."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def process_env(spec: DeploymentSpec, instance: str, tmpdir: Path, port: int | None) -> dict[str, str]:
    """The environment of one instance (or, with `instance` 'zygote' and no port, of a zygote).

    >>> from roost.model import AppConfig, AppName, DeploymentId
    >>> spec = DeploymentSpec(AppName("a"), DeploymentId("d1234567"), Path("/c"), Path("/v"), AppConfig(), {"X": "1"})
    >>> env = process_env(spec, "i1", Path("/t"), 8000)
    >>> env["PORT"], env["PATH"], env["X"], env["HOME"]
    ('8000', '/v/bin:/usr/bin:/bin', '1', '/t')
    """
    env = dict(BASE)
    env["PATH"] = f"{spec.venv_dir / 'bin'}:{BASE_PATH}"
    env["VIRTUAL_ENV"] = str(spec.venv_dir)
    env.update({k: v for k, v in spec.env.items() if k not in OWN_NAMES})
    env.update(instance_vars(spec, instance, tmpdir, port))
    return env


def instance_vars(spec: DeploymentSpec, instance: str, tmpdir: Path, port: int | None) -> dict[str, str]:
    """What differs between two instances of one deployment: all a forked child must change."""
    own = {
        "TMPDIR": str(tmpdir),
        "HOME": str(tmpdir),
        "ROOST_APP": spec.app,
        "ROOST_DEPLOYMENT": spec.deployment,
        "ROOST_INSTANCE": instance,
    }
    if port is not None:
        own["PORT"] = str(port)
    return own
