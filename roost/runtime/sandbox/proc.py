"""Whether this host can give each app a /proc that shows only its own uid's processes (root, apps
as their own uids): the launcher mounts one with hidepid=invisible in the app's mount namespace,
so no app reads the daemon's command line or another app's. Detected once, at start, by doing it.
"""

from __future__ import annotations

import subprocess

from roost.runtime.sandbox.confine import Confinement, LauncherPlan

TIMEOUT_CHECK = 30.0
SHOWS_ONLY_ITS_OWN = "test ! -e /proc/1 && test -e /proc/self/cmdline"  # pid 1 is root's


def hiding_works(uid: int) -> str:
    """ "" when a process of `uid` started by the launcher sees only its own uid's processes,
    else why not (the launcher's own line: an old kernel, no CAP_SYS_ADMIN). Blocking."""
    plan = LauncherPlan(uid=uid, gid=uid, hide_processes=True)
    argv = Confinement(plan, None).command(["/bin/sh", "-c", SHOWS_ONLY_ITS_OWN])
    try:
        completed = subprocess.run(  # noqa: S603 - an argv list of our own
            argv, capture_output=True, text=True, timeout=TIMEOUT_CHECK, check=False, cwd="/"
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if completed.returncode == 0:
        return ""
    lines = completed.stderr.strip().splitlines()
    return lines[-1] if lines else "pid 1 stays visible"
