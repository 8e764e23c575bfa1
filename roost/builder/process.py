"""Build subprocesses (uv, the venv's python): argv lists, an explicit environment, output streamed
line by line. Never a shell; the exit status always goes back to the caller; cancelling kills the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from uv import find_uv_bin

from roost.builder.enclosure import Enclosure
from roost.builder.jail import Confined

READ_BYTES = 64 * 1024
TAIL_LINES = 60
LIMIT_ERROR_CHARS = 1500
_PASSED_ENV = (
    "PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "NETRC", "XDG_CONFIG_HOME",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy",
)  # fmt: skip
_SET_BY_ROOST = frozenset(
    {
        "UV_CACHE_DIR", "UV_PYTHON", "UV_PYTHON_DOWNLOADS", "UV_PROJECT_ENVIRONMENT", "UV_SYSTEM_PYTHON",
        "UV_FROZEN", "UV_LOCKED", "UV_NO_SYNC", "UV_PROJECT", "UV_WORKING_DIRECTORY", "UV_NO_PROGRESS",
    }
)  # fmt: skip
StepWatcher = Callable[[int, Sequence[str]], None]
STEP_WATCHER: ContextVar[StepWatcher | None] = ContextVar("roost_build_step_watcher", default=None)
"""Told (pid, argv) of every build subprocess started in this context, when `run` gets no
`on_start`: the control plane sets it around one deployment's build to read back each step's
isolation, without the builder knowing."""
_TIMES = "\u00d7"  # older uv marks its errors with a cross; newer ones print "error:"
_ERROR_START_RE = re.compile(rf"^\s*(?:error:|{_TIMES})\s*")
_MARKER_RE = re.compile(rf"^\s*(?:error:|{_TIMES}|\u2570\u2500\u25b6|\u251c\u2500\u25b6|cause:|\u2502)\s*")


@dataclass(frozen=True, slots=True)
class Completed:
    """How a build subprocess ended, with the last lines it printed."""

    argv: tuple[str, ...]
    returncode: int
    tail: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def uv_binary() -> str:
    """The uv shipped by the `uv` package from PyPI; never a system install."""
    return find_uv_bin()


def build_env(cache_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of build subprocesses: the network and locale settings
    of the daemon, the operator's own UV_* settings, and Roost's cache."""
    source = os.environ if base is None else base
    env = {name: source[name] for name in _PASSED_ENV if name in source}
    env.update({k: v for k, v in source.items() if k.startswith("UV_") and k not in _SET_BY_ROOST})
    env.setdefault("PATH", os.defpath)
    env.update(
        UV_CACHE_DIR=str(cache_dir),
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
        NO_COLOR="1",
    )
    return env


async def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: Callable[[str], None],
    prefix: str = "    ",
    enclosure: Enclosure | None = None,
    confined: Confined | None = None,
    on_start: StepWatcher | None = None,
) -> Completed:
    """Run `argv`, passing each line it prints (stdout and stderr) to `log`.

    Returns its exit status and last lines; does not raise for a non-zero
    status. Cancelled, it kills the whole process group and reaps it. With an
    `enclosure`, it runs marked and in the builds' cgroup, for recovery after a crash;
    `confined`, it runs in its build's jail (which then joins the cgroup: see jail.py).
    `on_start` (else STEP_WATCHER's) is told the command's pid and `argv` once it exists (behind
    bwrap, once bwrap says which it is); it must not block.
    """
    watcher = on_start or STEP_WATCHER.get()
    step = tuple(argv)
    pass_fds: tuple[int, ...] = ()
    if enclosure is not None:
        env = {**env, **enclosure.environ()}
    if confined is not None:
        argv = confined.command(list(argv))
        pass_fds = confined.pass_fds
    elif enclosure is not None:
        argv = enclosure.wrap(argv)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    except BaseException:
        if confined is not None:
            confined.close()
        raise
    _started(process.pid, step, confined, watcher)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        assert process.stdout is not None  # noqa: S101 - asked for a pipe just above
        await _pump(process.stdout, tail, log, prefix)
        returncode = await process.wait()
    except BaseException:
        _kill_group(process)
        await asyncio.shield(process.wait())
        raise
    return Completed(tuple(argv), returncode, tuple(tail))


def _started(pid: int, step: tuple[str, ...], confined: Confined | None, watcher: StepWatcher | None) -> None:
    """Tell `watcher` the command's own pid: `pid` itself, or behind bwrap the one bwrap reports
    (a build waits for bwrap; its cgroup holds the rest)."""

    def tell(target: int) -> None:
        if watcher is not None:
            watcher(target, step)

    if confined is not None:
        confined.spawned(asyncio.get_running_loop(), tell)
    if confined is None or not confined.sandboxed:
        tell(pid)


async def _pump(stream: asyncio.StreamReader, tail: deque[str], log: Callable[[str], None], prefix: str) -> None:
    pending = ""
    while chunk := await stream.read(READ_BYTES):
        pending += chunk.decode("utf-8", "replace")
        *lines, pending = re.split(r"\r\n|\r|\n", pending)
        for line in lines:
            _emit(line, tail, log, prefix)
    if pending:
        _emit(pending, tail, log, prefix)


def _emit(line: str, tail: deque[str], log: Callable[[str], None], prefix: str) -> None:
    text = line.rstrip()
    if text:
        tail.append(text)
        log(prefix + text)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def error_summary(tail: Sequence[str]) -> str:
    """uv's own error, on one line: from its last `error:` (or, in older uv, cross) line to the end.

    ["error: No solution found when resolving dependencies", "  cause: Because foo was not found ..."]
    -> "No solution found when resolving dependencies: Because foo was not found ..."
    """
    starts = [i for i, line in enumerate(tail) if _ERROR_START_RE.match(line)]
    if starts:
        parts = [_MARKER_RE.sub("", line).strip() for line in tail[starts[-1] :]]
        parts = [part for part in parts if part]
        head, rest = parts[0].rstrip(":") if parts else "", " ".join(parts[1:])
        summary = f"{head}: {rest}" if rest else head
    else:
        summary = " ".join([line.strip() for line in tail if line.strip()][-3:])
    summary = summary or "no output"
    return summary if len(summary) <= LIMIT_ERROR_CHARS else summary[: LIMIT_ERROR_CHARS - 1] + "\u2026"


__all__ = ["STEP_WATCHER", "Completed", "StepWatcher", "build_env", "error_summary", "run", "uv_binary"]
