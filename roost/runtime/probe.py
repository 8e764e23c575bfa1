"""The build check: one throwaway fresh instance with $PORT set must answer `GET /` (any
status counts) within the limit. Always stopped afterwards; never routed to, never
forked from a zygote. Its output goes to the app's log as source `probe`.

A failure says why in one line that ends with the cause: how the process ended and what it
said as it died (`exited with status 3 before answering: KeyError: 'DATABASE_URL'`); for a command app it
starts with the command as run and the port it was given."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import shutil
import time
from pathlib import Path

from roost.applog import LogBook
from roost.runtime.cause import stated_cause
from roost.runtime.environ import make_tmpdir, process_env
from roost.runtime.output import Output
from roost.runtime.process import Child, terminate, wait_exit
from roost.runtime.protocol import DeploymentSpec, ProbeResult
from roost.runtime.sandbox import Confinement, Sandbox
from roost.runtime.spawn import (
    LOOPBACK,
    Spawned,
    SpawnFailed,
    bind_listener,
    command_argv,
    free_port,
    python_of,
    spawn,
    spawn_runner,
    wait_listening,
    wait_notified,
)

PROBE_TAIL = 40
GRACE_EXIT_NOTICE = 1.0
LIMIT_STATUS_LINE = 1024


class NoAnswer(Exception):
    """The probe's request got no HTTP status line."""


async def run_probe(
    spec: DeploymentSpec, limit_seconds: float, tmpdir: Path, logs: LogBook, grace_kill: float, sandbox: Sandbox
) -> ProbeResult:
    """The probe runs untrusted code at build time: in the same sandbox as any instance."""
    started = time.monotonic()
    deadline = started + limit_seconds
    output = Output(lambda line: logs.write(spec.app, spec.deployment, "probe", line), tail_lines=PROBE_TAIL)
    make_tmpdir(tmpdir)
    await sandbox.prepare(spec)
    confinement = sandbox.confine(spec, tmpdir.name, tmpdir)
    child: Child | None = None
    subject = ""
    ended = False  # on its own, before the verdict: its last words say why
    try:
        try:
            spawned, port = _spawn(spec, sandbox.tmpdir(tmpdir, "probe", forked=False), confinement)
        except SpawnFailed as exc:
            return ProbeResult(False, time.monotonic() - started, str(exc), "")
        child = spawned.child
        subject = _subject(spec, port)
        await output.attach(spawned.output_fd)
        message = await _check(spec, spawned, port, deadline, limit_seconds)
        ended = not child.is_alive()
        ok = message.startswith("answered")
        seconds = time.monotonic() - started
        if ok:
            message = f"{message} in {seconds:.2f}s"
    finally:
        if child is not None and child.is_alive():
            await terminate(child, grace_kill)
        await output.finish()
        await asyncio.to_thread(shutil.rmtree, tmpdir, True)
        if confinement is not None and confinement.cgroup is not None:
            await asyncio.to_thread(confinement.cgroup.remove)
    if not ok:
        message = f"{subject}{message}{_stated_cause(child, output) if ended else ''}"
    return ProbeResult(ok, seconds, message, "\n".join(output.tail))


def _subject(spec: DeploymentSpec, port: int) -> str:
    """For a command app, what ran: "/bin/sh -c 'exec gunicorn main:app' (PORT=41234) "."""
    if not spec.config.command:
        return ""
    return f"{shlex.join(command_argv(spec.config.command))} (PORT={port}) "


def _stated_cause(child: Child | None, output: Output) -> str:
    """ ": KeyError: 'DATABASE_URL'" when the process exited and said why; a signal speaks for itself."""
    if child is None or child.exited.result().signal is not None:
        return ""
    words = stated_cause(output.tail)
    return f": {words}" if words else ""


def _spawn(spec: DeploymentSpec, tmpdir: Path, confinement: Confinement | None) -> tuple[Spawned, int]:
    if spec.config.command:
        port = free_port()
        env = process_env(spec, "probe", tmpdir, port)
        return spawn(command_argv(spec.config.command), spec.code_dir, env, (), confinement), port
    if not python_of(spec.venv_dir).exists():
        raise SpawnFailed(f"the deployment's virtual environment has no python ({python_of(spec.venv_dir)})")
    with bind_listener() as sock:
        port = sock.getsockname()[1]
        env = process_env(spec, "probe", tmpdir, port)
        entrypoint = spec.config.entrypoint or ""
        return spawn_runner(spec.venv_dir, spec.code_dir, env, entrypoint, sock, confinement), port


async def _check(spec: DeploymentSpec, spawned: Spawned, port: int, deadline: float, limit: float) -> str:
    """ "answered HTTP 200", or what went wrong, in words."""
    child = spawned.child
    if spawned.notify_fd is not None:
        listening = await wait_notified(spawned.notify_fd, child, deadline)
    else:
        listening = await wait_listening(port, child, deadline)
    if not listening:
        if time.monotonic() < deadline:
            await wait_exit(child, GRACE_EXIT_NOTICE)  # its pipe closed before its exit was reaped
        return _died(child) or f"never listened on $PORT ({port}) within {limit:g}s"
    try:
        status = await http_status(port, deadline)
    except (OSError, TimeoutError, NoAnswer) as exc:
        await wait_exit(child, GRACE_EXIT_NOTICE)  # a process that just died explains the missing answer best
        detail = "no answer in time" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        return _died(child) or f"listened on $PORT ({port}) but did not answer HTTP ({detail})"
    return f"answered HTTP {status}"


def _died(child: Child) -> str:
    if child.exited.done():
        return f"{child.exited.result().describe()} before answering"
    return ""


async def http_status(port: int, deadline: float) -> int:
    """`GET /` on 127.0.0.1:`port`; the status code of the answer."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout_at(loop.time() + max(0.0, deadline - time.monotonic())):
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            request = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: roost-probe\r\nConnection: close\r\n\r\n"
            writer.write(request)
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    parts = line[:LIMIT_STATUS_LINE].split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise NoAnswer(f"answered something that is not HTTP: {line[:80]!r}" if line else "closed the connection")
    return int(parts[1])
