"""Spawning fresh processes: the runner (serve or zygote mode) and command apps.

Each one gets argv as a list, an explicit environment, its own session and
process group, stdin from /dev/null, one pipe for stdout and stderr, and only
the descriptors named here. Readiness: a runner writes to its notify pipe once
it serves; a command app is ready when its port accepts a connection.

A command app's `command` is the one shell line Roost runs, by contract (Procfile, $PORT):
`/bin/sh -c 'exec <command>'`, so the shell expands `$PORT` and the app's variables and then
becomes the server itself (same pid: signals, exit status and cgroup accounting are the server's).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roost.runtime.process import Child, SpawnedChild

if TYPE_CHECKING:
    from roost.runtime.sandbox.confine import Confinement

RUNNER = Path(__file__).with_name("runner.py")
SHELL = "/bin/sh"
LOOPBACK = "127.0.0.1"
LIMIT_BACKLOG = 1024
POLL_CONNECT = 0.02


class SpawnFailed(Exception):
    """The process could not even be created (no python in the venv, a missing command)."""


@dataclass(slots=True)
class Spawned:
    """A fresh child, the read end of its output pipe and, for runners, of its notify pipe."""

    child: SpawnedChild
    output_fd: int
    notify_fd: int | None = None


def bind_listener() -> socket.socket:
    """A listening socket on 127.0.0.1 with a free port, bound here so connections queue in the
    kernel before the instance accepts them (socket activation)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOOPBACK, 0))
        sock.listen(LIMIT_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def free_port() -> int:
    """A port nobody listens on right now (for command apps, which bind $PORT themselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def python_of(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def runner_argv(venv_dir: Path, mode: str, *options: str) -> list[str]:
    return [str(python_of(venv_dir)), str(RUNNER), mode, *options]


_ASSIGNMENTS = re.compile(r"""\s*(?:[A-Za-z_][A-Za-z0-9_]*=(?:'[^']*'|"(?:[^"\\]|\\.)*"|[^\s'"\\;&|<>()`])*\s+)*""")


def command_argv(command: str) -> list[str]:
    """`command` from roost.toml as the shell line it is: `/bin/sh -c 'exec <command>'`.

    Leading variable assignments stay in front of `exec` (`exec A=1 x` would look for a program
    called `A=1`), so `WEB_CONCURRENCY=2 gunicorn ...` works as it does in a Procfile. A line
    that starts with `exec` itself, or chains commands (`cd src && exec gunicorn ...`), runs as
    written: `exec cd` would fail, and the line's author says where the server is exec'd.

    >>> command_argv("gunicorn main:app --bind 127.0.0.1:$PORT")
    ['/bin/sh', '-c', 'exec gunicorn main:app --bind 127.0.0.1:$PORT']
    >>> command_argv("A=1 B='x y' python -m http.server $PORT")[2]
    "A=1 B='x y' exec python -m http.server $PORT"
    >>> command_argv("cd src && exec gunicorn app:app -b 127.0.0.1:$PORT")[2]
    'cd src && exec gunicorn app:app -b 127.0.0.1:$PORT'
    """
    line = command.strip()
    if not line:
        raise SpawnFailed("the command is empty")
    assignments = _ASSIGNMENTS.match(line)
    split = assignments.end() if assignments else 0
    if _runs_as_written(line[split:]):
        return [SHELL, "-c", line]
    return [SHELL, "-c", f"{line[:split]}exec {line[split:]}"]


def _runs_as_written(line: str) -> bool:
    """True for `exec ...` and for a line of several commands (`;`, `&&`, `||`, `|`, `&`, a newline)."""
    if "\n" in line:
        return True
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:
        return False  # unbalanced quotes: the shell will say so
    return bool(words) and (words[0] == "exec" or any(set(word) <= set(";&|") for word in words))


def spawn(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    pass_fds: Sequence[int] = (),
    confinement: Confinement | None = None,
) -> Spawned:
    """Start `argv` in a new session; its stdout and stderr go to one pipe we read. With a
    confinement, Roost's launcher starts first and puts it in its sandbox (see runtime/sandbox)."""
    loop = asyncio.get_running_loop()
    if confinement is not None:
        _check_runnable(argv[0], cwd, env)  # inside the sandbox it could only say "exit status 127"
        argv = confinement.command(list(argv))
        pass_fds = (*pass_fds, *confinement.pass_fds)
    read_fd, write_fd = os.pipe()
    try:
        popen = subprocess.Popen(  # noqa: S603 - an argv list, never a shell
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            pass_fds=tuple(pass_fds),
            close_fds=True,
            start_new_session=True,
        )
    except OSError as exc:
        os.close(read_fd)
        if confinement is not None:
            confinement.close()
        raise SpawnFailed(f"could not run {argv[0]}: {exc.strerror or exc}") from exc
    finally:
        os.close(write_fd)
    child = SpawnedChild(popen, loop, sandboxed=confinement is not None and confinement.sandboxed)
    if confinement is not None:
        confinement.spawned(loop, child.lead_by)
    return Spawned(child, read_fd)


def _check_runnable(program: str, cwd: Path, env: Mapping[str, str]) -> None:
    """Raise SpawnFailed, as Popen would, when `program` cannot be found or run."""
    if "/" in program:
        found: str | None = str(cwd / program) if os.access(cwd / program, os.X_OK) else None
    else:
        found = shutil.which(program, path=env.get("PATH", ""))
    if found is None:
        raise SpawnFailed(f"could not run {program}: No such file or directory")


def spawn_runner(
    venv_dir: Path,
    cwd: Path,
    env: Mapping[str, str],
    entrypoint: str,
    sock: socket.socket,
    confinement: Confinement | None = None,
) -> Spawned:
    """A fresh runner serving `entrypoint` on `sock`; it says "ready" on a pipe once it serves."""
    notify_read, notify_write = os.pipe()
    fd = sock.fileno()
    argv = runner_argv(venv_dir, "serve", "--app", entrypoint, "--fd", str(fd), "--notify-fd", str(notify_write))
    try:
        spawned = spawn(argv, cwd, env, (fd, notify_write), confinement)
    except BaseException:
        os.close(notify_read)
        raise
    finally:
        os.close(notify_write)
    spawned.notify_fd = notify_read
    return spawned


async def wait_notified(notify_fd: int, child: Child, deadline: float) -> bool:
    """True once the runner wrote to its notify pipe; False if it exited first or time ran out.
    Closes `notify_fd`."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()
    loop.add_reader(notify_fd, lambda: None if readable.done() else readable.set_result(None))
    try:
        async with asyncio.timeout_at(loop.time() + max(0.0, deadline - time.monotonic())):
            waiting: list[asyncio.Future[Any]] = [readable, child.exited]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(notify_fd)
    data = b""
    if readable.done():
        with contextlib.suppress(OSError):
            data = os.read(notify_fd, 64)
    readable.cancel()
    os.close(notify_fd)
    return data.startswith(b"ready")


async def wait_listening(port: int, child: Child | None, deadline: float) -> bool:
    """Poll-connect to 127.0.0.1:`port` until it accepts; False if the child exited or time ran out."""
    while time.monotonic() < deadline:
        if child is not None and not child.is_alive():
            return False
        try:
            async with asyncio.timeout(max(0.01, min(1.0, deadline - time.monotonic()))):
                _, writer = await asyncio.open_connection(LOOPBACK, port)
        except (OSError, TimeoutError):
            await asyncio.sleep(POLL_CONNECT)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False
