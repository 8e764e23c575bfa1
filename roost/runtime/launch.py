"""Bringing one instance's process into being, four ways: a fork of the zygote, a fresh
runner, the app's own command, or a process type's command (a worker). Each returns once
the instance is ready and raises StartFailed otherwise; none decides which way to go (the
supervisor does).

Readiness differs on purpose: a forked instance is ready the moment it exists, since
the app is already imported and the kernel queues connections on the socket we bound;
a fresh runner is ready once it says so on its notify pipe (after the import and the
ASGI lifespan startup), so an import error is a start failure rather than a 502; a
command app is ready once its $PORT accepts a connection; a process type takes no
connections and is ready once it has stayed up for its `ready_after`. A web instance of an app
with a `[check]` is then ready only once its check passes (the keeper asks,
runtime/healthcheck.py); a process type has no check.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from roost.runtime.environ import instance_vars, process_env
from roost.runtime.instance import Instance
from roost.runtime.ports import PortBook
from roost.runtime.process import wait_exit
from roost.runtime.protocol import StartKind
from roost.runtime.sandbox import Cgroup, Confinement
from roost.runtime.spawn import (
    SpawnFailed,
    command_argv,
    python_of,
    spawn,
    spawn_runner,
    wait_listening,
    wait_notified,
)
from roost.runtime.zygote import Zygote

GRACE_EXIT_NOTICE = 1.0


class StartFailed(Exception):
    """The instance could not start; the message says why, for people."""


Confine = Callable[[int], Awaitable[Cgroup | None]]


async def launch_forked(
    instance: Instance, zygote: Zygote, tmpdir: Path, confine: Confine | None, warm: bool, ports: PortBook
) -> None:
    """Fork from the zygote; raises ForkFailed (the caller falls back to a fresh start).

    `warm` is False when the zygote was not ready as this start began: whoever waited also
    waited for the zygote's full import, so the start counts as FRESH ("cold"), not FORK.

    With `confine`, the child waits on a gate pipe until `confine(pid)` has put it in its
    cgroup (and given that group back): it serves nothing, and forks nothing, outside its
    limits. `confine` raising OSError keeps the gate shut, and the child exits."""
    sock = ports.listener()
    read_fd, write_fd = os.pipe()
    gate_read, gate_write = os.pipe() if confine is not None else (None, None)
    try:
        port: int = sock.getsockname()[1]
        env = instance_vars(instance.spec, instance.id, tmpdir, port)
        child = await zygote.fork(instance.id, sock, write_fd, env, gate_read)
    except BaseException:
        os.close(read_fd)
        if gate_write is not None:
            os.close(gate_write)
        raise
    finally:
        sock.close()
        os.close(write_fd)
        if gate_read is not None:
            os.close(gate_read)
    instance.port = port
    instance.child = child
    instance.forked = True
    instance.start_kind = StartKind.FORK if warm else StartKind.FRESH
    if confine is not None and gate_write is not None:
        await _open_gate(instance, confine, child.pid, gate_write)
    instance.mark_spawned()
    await instance.output.attach(read_fd)


async def _open_gate(instance: Instance, confine: Confine, pid: int, gate_write: int) -> None:
    """Put the forked child into its cgroup, then let it go (closing the gate unopened ends it)."""
    try:
        instance.cgroup = await confine(pid)
        os.write(gate_write, b"1")
    except OSError:
        pass  # it died already, or cannot be confined: EOF on the gate makes it exit
    finally:
        os.close(gate_write)


async def launch_fresh(
    instance: Instance, deadline: float, tmpdir: Path, confinement: Confinement | None, ports: PortBook
) -> None:
    """A new runner process that imports the app itself (seconds, not milliseconds)."""
    spec = instance.spec
    if not python_of(spec.venv_dir).exists():
        raise StartFailed(f"the deployment's virtual environment has no python ({python_of(spec.venv_dir)})")
    sock = ports.listener()
    try:
        port: int = sock.getsockname()[1]
        env = process_env(spec, instance.id, tmpdir, port)
        entrypoint = spec.config.entrypoint or ""
        spawned = spawn_runner(spec.venv_dir, spec.code_dir, env, entrypoint, sock, confinement)
    except SpawnFailed as exc:
        raise StartFailed(str(exc)) from exc
    finally:
        sock.close()
    instance.port = port
    instance.child = spawned.child
    instance.start_kind = StartKind.FRESH
    instance.mark_spawned()
    assert spawned.notify_fd is not None  # noqa: S101 - spawn_runner always opens it
    try:
        await instance.output.attach(spawned.output_fd)
    except BaseException:
        os.close(spawned.notify_fd)
        raise
    if not await wait_notified(spawned.notify_fd, spawned.child, deadline):
        raise StartFailed(await _not_ready(instance, deadline, "did not start serving"))


async def launch_command(
    instance: Instance, deadline: float, tmpdir: Path, confinement: Confinement | None, ports: PortBook
) -> None:
    """The app's own command, with $PORT set to a free port of the instance range it must listen on."""
    spec = instance.spec
    port = ports.free_port()
    env = process_env(spec, instance.id, tmpdir, port)
    try:
        spawned = spawn(command_argv(spec.config.command or ""), spec.code_dir, env, (), confinement)
    except SpawnFailed as exc:
        raise StartFailed(str(exc)) from exc
    instance.port = port
    instance.child = spawned.child
    instance.start_kind = StartKind.FRESH
    instance.mark_spawned()
    await instance.output.attach(spawned.output_fd)
    if not await wait_listening(port, spawned.child, deadline):
        raise StartFailed(await _not_ready(instance, deadline, f"never listened on $PORT (port {port})"))


async def launch_process(instance: Instance, tmpdir: Path, confinement: Confinement | None) -> None:
    """One instance of a process type: its command, with no $PORT; ready once it stayed up its
    `ready_after`, so a worker that exits at once is a start failure with its own last lines."""
    spec = instance.spec
    process = spec.process
    assert process is not None  # noqa: S101 - the keeper calls this only for a process type's spec
    env = process_env(spec, instance.id, tmpdir, None)
    try:
        spawned = spawn(command_argv(process.command), spec.code_dir, env, (), confinement)
    except SpawnFailed as exc:
        raise StartFailed(str(exc)) from exc
    instance.child = spawned.child
    instance.start_kind = StartKind.FRESH
    instance.mark_spawned()
    await instance.output.attach(spawned.output_fd)
    status = await wait_exit(spawned.child, process.ready_after)
    if status is not None:
        raise StartFailed(f"{status.describe()} within {process.ready_after:g}s of starting")


async def _not_ready(instance: Instance, deadline: float, what: str) -> str:
    """Why the instance is not ready: it ended (its pipe closed first: give the reaping a moment),
    or time ran out."""
    child = instance.child
    if child is not None and time.monotonic() < deadline:
        status = await wait_exit(child, GRACE_EXIT_NOTICE)
        if status is not None:
            return f"{status.describe()} before it was ready"
    return f"{what} within {max(0.0, deadline - instance.spawned_at):.0f}s"
