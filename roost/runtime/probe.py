"""The build check: one throwaway fresh instance with $PORT set must answer `GET /` (any
status counts) within the limit, or pass the app's `[check]` (runtime/healthcheck.py). Always
stopped afterwards; never routed to, never forked from a zygote. Its output goes to the app's log as source `probe`.

A failure says why in one line that ends with the cause: how the process ended and what it
said as it died (`exited with status 3 before answering: KeyError: 'DATABASE_URL'`); for a command app it
starts with the command as run and the port it was given."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import time
from pathlib import Path

from roost.applog import LogBook
from roost.runtime.cause import stated_cause
from roost.runtime.environ import make_tmpdir, process_env
from roost.runtime.healthcheck import wait_healthy
from roost.runtime.output import Output
from roost.runtime.ports import LOOPBACK, PortBook
from roost.runtime.process import Child, terminate, wait_exit
from roost.runtime.protocol import DeploymentSpec, ProbeResult
from roost.runtime.sandbox import Confinement, Sandbox
from roost.runtime.spawn import (
    Spawned,
    SpawnFailed,
    command_argv,
    python_of,
    spawn,
    spawn_runner,
    wait_listening,
    wait_notified,
)

PROBE_TAIL = 40
GRACE_EXIT_NOTICE = 1.0


async def end_one_off(
    child: Child | None, output: Output, tmpdir: Path, confinement: Confinement | None, grace_kill: float
) -> None:
    """Clear away what a one-off process of a deployment (the build check, the release command)
    leaves behind: its process group if it still runs (TERM, grace, KILL), its output reader, its
    TMPDIR and its cgroup."""
    if child is not None and child.is_alive():
        await terminate(child, grace_kill)
    await output.finish()
    await asyncio.to_thread(shutil.rmtree, tmpdir, True)
    if confinement is not None and confinement.cgroup is not None:
        await asyncio.to_thread(confinement.cgroup.remove)


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
            spawned, port = _spawn(spec, sandbox.tmpdir(tmpdir, "probe", forked=False), confinement, sandbox.ports)
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
        await end_one_off(child, output, tmpdir, confinement, grace_kill)
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


def _spawn(spec: DeploymentSpec, tmpdir: Path, confinement: Confinement | None, ports: PortBook) -> tuple[Spawned, int]:
    if spec.config.command:
        port = ports.free_port()
        env = process_env(spec, "probe", tmpdir, port)
        return spawn(command_argv(spec.config.command), spec.code_dir, env, (), confinement), port
    if not python_of(spec.venv_dir).exists():
        raise SpawnFailed(f"the deployment's virtual environment has no python ({python_of(spec.venv_dir)})")
    with ports.listener() as sock:
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
    check = spec.config.check
    outcome = await wait_healthy(LOOPBACK, port, check, child, deadline)
    if outcome.ok:
        return f"answered HTTP {outcome.status}" if check is None else f"answered its health check ({outcome.detail})"
    await wait_exit(child, GRACE_EXIT_NOTICE)  # a process that just died explains the missing answer best
    if check is None:
        detail = outcome.detail.removeprefix("GET /: ")
        return _died(child) or f"listened on $PORT ({port}) but did not answer HTTP ({detail})"
    return _died(child) or f"listened on $PORT ({port}) but failed its health check within {limit:g}s: {outcome.detail}"


def _died(child: Child) -> str:
    if child.exited.done():
        return f"{child.exited.result().describe()} before answering"
    return ""
