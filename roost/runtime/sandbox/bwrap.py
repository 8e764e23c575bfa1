"""The filesystem view of a sandboxed process, as a bubblewrap command line. Pure: builds argv.

What the app sees: the system's /usr (and /bin, /lib... as on the host), /etc, /proc and a
minimal /dev, all read-only; its deployment's code and virtual environment, the interpreter
that venv was made from and Roost's runner, read-only and at their host paths (so cwd, PATH
and VIRTUAL_ENV need no rewriting); a private size-limited tmpfs on /tmp. Nothing else of
the host: not the rest of $ROOST_HOME (the store, secret.key, passwords, other apps).

No pid namespace, on purpose: a zygote forks instances and reports their pids, which the
daemon signals, watches by pidfd and moves into cgroups, so those pids must be the host's.
`--new-session` makes the app lead its own process group, which the daemon signals (bwrap
itself forwards no signal); `--die-with-parent` takes the app down with bwrap.

Running as root, bwrap mounts as root and `setpriv` drops to the app's uid inside, with no
capabilities left; as another user bwrap uses a user namespace and the app keeps that user.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SETPRIV = "/usr/bin/setpriv"
TMP = "/tmp"  # noqa: S108 - inside the sandbox: a private tmpfs
TIMEOUT_VERSION = 5.0


@dataclass(frozen=True, slots=True)
class View:
    """One sandboxed process's view and identity."""

    code_dir: Path
    read_only: tuple[Path, ...]  # the venv, the interpreter's prefix, the runner: bound at their own paths
    tmp_size: int
    network_none: bool = False
    uid: int | None = None  # drop to this uid (and gid) inside, through setpriv: root only
    gid: int | None = None
    seccomp_fd: int | None = None
    info_fd: int | None = None  # bwrap writes {"child-pid": N} here
    writable: tuple[Path, ...] = ()  # bound read-write at their own paths (a build's folders), code_dir may be one


def version(binary: str) -> str | None:
    """ "0.8.0", or None when `binary` does not run (blocking: call once, in a thread)."""
    try:
        completed = subprocess.run(  # noqa: S603 - an argv list of our own
            [binary, "--version"], capture_output=True, text=True, timeout=TIMEOUT_VERSION, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", completed.stdout)
    return match.group(1) if completed.returncode == 0 and match else None


def works(binary: str, uid: int | None) -> str:
    """ "" when bwrap can build a sandbox here, else why not (its own error line). Blocking."""
    argv = [binary, *system_binds(), "--", "/usr/bin/true"]
    if uid is not None:
        argv[-1:] = [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "/usr/bin/true"]
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_VERSION, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if completed.returncode == 0:
        return ""
    lines = completed.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {completed.returncode}"


def system_binds(host: Path = Path("/")) -> list[str]:
    """/usr and friends as the host has them: merged-/usr symlinks stay symlinks."""
    argv: list[str] = []
    for name in SYSTEM_DIRS:
        path = host / name.lstrip("/")
        if path.is_symlink():
            argv += ["--symlink", str(path.readlink()), name]
        elif path.is_dir():
            argv += ["--ro-bind", name, name]
    return argv


def interpreter_prefix(venv_dir: Path) -> Path | None:
    """The prefix of the interpreter a venv was made from (pyvenv.cfg's `home`, one level up),
    which must be visible for the venv's python to start. None when it is under /usr already."""
    try:
        text = (venv_dir / "pyvenv.cfg").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            prefix = Path(value.strip()).resolve().parent
            return None if _under(prefix, ("/usr",)) else prefix
    return None


def _under(path: Path, roots: Iterable[str]) -> bool:
    return any(path == Path(root) or Path(root) in path.parents for root in roots)


def ancestors(paths: Iterable[Path], covered: Iterable[str]) -> list[Path]:
    """The directories bwrap must create (traversable) above the bind targets, parents first.

    >>> [str(p) for p in ancestors([Path("/srv/roost/a/code"), Path("/srv/roost/venvs/k")], ["/tmp"])]
    ['/srv', '/srv/roost', '/srv/roost/a', '/srv/roost/venvs']
    """
    needed: set[Path] = set()
    for path in paths:
        for parent in path.parents:
            if parent != Path("/") and str(parent) not in covered:
                needed.add(parent)
    return sorted(needed, key=lambda p: (len(p.parts), str(p)))


def argv(binary: str, view: View, command: list[str]) -> list[str]:
    """bwrap's argv around `command` (which it executes in `view.code_dir`)."""
    binds = [view.code_dir, *view.read_only, *view.writable]
    out = [binary, "--new-session", "--die-with-parent", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if view.network_none:
        out.append("--unshare-net")
    if view.uid is None:
        out.append("--unshare-user")  # unprivileged: mounts need a user namespace (the uid stays ours)
    out += system_binds()
    out += ["--ro-bind", "/etc", "/etc", "--ro-bind", "/proc", "/proc", "--dev", "/dev"]
    out += ["--size", str(view.tmp_size), "--perms", "1777", "--tmpfs", TMP]
    # POSIX semaphores and shared memory (multiprocessing's locks, compileall -j) live in /dev/shm,
    # which --dev leaves writable by root only; the IPC namespace is private already.
    out += ["--size", str(view.tmp_size), "--perms", "1777", "--tmpfs", "/dev/shm"]  # noqa: S108 - a fresh tmpfs of its own
    for directory in ancestors(binds, (TMP,)):
        out += ["--perms", "0755", "--dir", str(directory)]
    for path in binds:
        out += ["--bind" if path in view.writable else "--ro-bind", str(path), str(path)]
    if view.seccomp_fd is not None:
        out += ["--seccomp", str(view.seccomp_fd)]
    if view.info_fd is not None:
        out += ["--info-fd", str(view.info_fd)]
    out += ["--chdir", str(view.code_dir), "--"]
    if view.uid is not None:
        gid = view.gid if view.gid is not None else view.uid
        out += [SETPRIV, f"--reuid={view.uid}", f"--regid={gid}", "--clear-groups"]
        out += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return out + command
