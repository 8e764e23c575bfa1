"""Root without bubblewrap: which host paths an app's own uid must reach, and the start-up check
that it can. The launcher (launcher.py, `reveal`) does the work: when a directory above one of
these paths is closed to the app's uid (pyenv under a 0700 /root, a home under a 0700 folder),
it hides that directory behind a tmpfs holding only the way down to them, in a private mount
namespace. The host's modes are never changed. Where that cannot be done (no CAP_SYS_ADMIN, as
in many containers), `check` refuses the start rather than let every deploy fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from roost.errors import Unavailable
from roost.runtime.sandbox.confine import Confinement, LauncherPlan

RUNNER = Path(__file__).parents[1] / "runner.py"  # spawn.RUNNER; spawn imports this package
BASE_PYTHON = Path(getattr(sys, "_base_executable", sys.executable))
"""The interpreter venvs are made from: Roost's own (the builder's default), outside its venv."""
TIMEOUT_CHECK = 30.0
Reveal = list[tuple[str, bool]]


def interpreter_dirs(venv_dir: Path) -> list[Path]:
    """The prefix of the interpreter `venv_dir` was made from (pyvenv.cfg's `home`, one level
    up), as written there and resolved: the venv's bin/python links to the written path."""
    try:
        text = (venv_dir / "pyvenv.cfg").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            return prefixes(Path(value.strip()) / "python")
    return []


def prefixes(python: Path) -> list[Path]:
    """`/root/.pyenv/versions/3.11.7/bin/python3.11` -> [its prefix as written, resolved]."""
    written = python.parent.parent
    resolved = python.resolve().parent.parent
    return [written] if written == resolved else [written, resolved]


def paths_for(code_dir: Path, venv_dir: Path, host_tmpdir: Path | None) -> Reveal:
    """What one app process reaches on the host ([path, writable]): the interpreter's prefix,
    the runner, its code and venv read-only, and the directory of the TMPDIRs (a forked
    instance's TMPDIR is made there after its zygote started; each is the app's own, 0700)."""
    found: Reveal = [(str(p), False) for p in interpreter_dirs(venv_dir)]
    found += [(str(RUNNER), False), (str(code_dir), False), (str(venv_dir), False)]
    if host_tmpdir is not None:
        found.append((str(host_tmpdir.parent), True))
    return found


def check(uid: int, home: Path) -> None:
    """Refuse to start when an app's uid could not run the interpreter or reach the home (a
    directory above one is closed to it, and no view can be made here). Blocking: one launch
    of the interpreter as `uid` through the launcher, as every instance starts."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)  # the daemon's first act; a bare runtime's too
    reveal = [(str(p), False) for p in prefixes(BASE_PYTHON)] + [(str(RUNNER), False), (str(home), False)]
    plan = LauncherPlan(uid=uid, gid=uid, reveal=reveal)
    command = [str(BASE_PYTHON), "-I", "-S", "-c", "import os, sys; os.stat(sys.argv[1]); os.stat(sys.argv[2])"]
    argv = Confinement(plan, None).command([*command, str(RUNNER), str(home)])
    try:
        completed = subprocess.run(  # noqa: S603 - an argv list of our own
            argv, capture_output=True, text=True, timeout=TIMEOUT_CHECK, check=False, cwd="/"
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = str(exc)
    else:
        if completed.returncode == 0:
            return
        lines = completed.stderr.strip().splitlines()
        why = lines[-1] if lines else f"exit status {completed.returncode}"
    raise Unavailable(
        f"apps cannot run here: as uid {uid} (each app's own, since Roost runs as root) the interpreter "
        f"{BASE_PYTHON} or the home {home} is out of reach behind a directory only root may enter, there is "
        f"no bubblewrap to show them, and Roost cannot make a private view of them ({why})",
        hint=(
            "install bubblewrap (apt-get install bubblewrap), or run Roost with a Python and a ROOST_HOME "
            "outside private directories (e.g. /usr/bin/python3 and /var/lib/roost), or allow mount "
            "namespaces (CAP_SYS_ADMIN) in this container"
        ),
    )
