"""The release command: the app's `release` line (`python manage.py migrate --noinput`), run once
per deployment after the build check and before the deployment takes traffic.

It runs like an instance: the same launcher, uid, bubblewrap view, seccomp filter and cgroup
limits, the app's own environment and secrets, a private TMPDIR, no $PORT. Its output goes to
the app's log (source `release`) and, line by line, to whoever follows the push. Over its
`release_timeout` its process group is stopped (TERM, grace, KILL). Never retried here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from roost.applog import LogBook
from roost.runtime.environ import make_tmpdir, process_env
from roost.runtime.output import Output
from roost.runtime.probe import end_one_off
from roost.runtime.process import Child, ExitStatus, terminate, wait_exit
from roost.runtime.protocol import DeploymentSpec, ReleaseResult
from roost.runtime.sandbox import Sandbox
from roost.runtime.spawn import SpawnFailed, command_argv, spawn

RELEASE_TAIL = 20  # lines quoted by a failed release's error
RELEASE_SOURCE = "release"  # its lines in the app's log, and its ROOST_INSTANCE


async def run_release(
    spec: DeploymentSpec,
    tmpdir: Path,
    logs: LogBook,
    on_line: Callable[[str], None],
    grace_kill: float,
    sandbox: Sandbox,
) -> ReleaseResult:
    """Run `spec.config.release` to its end or its timeout; the verdict in words."""
    command = spec.config.release or ""
    limit = spec.config.release_timeout
    started = time.monotonic()

    def line(text: str) -> None:
        logs.write(spec.app, spec.deployment, RELEASE_SOURCE, text)
        on_line(text)

    output = Output(line, tail_lines=RELEASE_TAIL)
    make_tmpdir(tmpdir)
    await sandbox.prepare(spec)
    confinement = sandbox.confine(spec, tmpdir.name, tmpdir)
    child: Child | None = None
    try:
        env = process_env(spec, RELEASE_SOURCE, sandbox.tmpdir(tmpdir, RELEASE_SOURCE, forked=False), None)
        try:
            spawned = spawn(command_argv(command), spec.code_dir, env, (), confinement)
        except SpawnFailed as exc:
            return ReleaseResult(False, time.monotonic() - started, f"`{command}` could not start: {exc}", "")
        child = spawned.child
        await output.attach(spawned.output_fd)
        status = await wait_exit(child, limit)
        if status is None:
            await terminate(child, grace_kill)
    finally:
        await end_one_off(child, output, tmpdir, confinement, grace_kill)
    seconds = time.monotonic() - started
    tail = "\n".join(output.tail)
    return ReleaseResult(status is not None and status.code == 0, seconds, verdict(command, status, limit), tail)


def verdict(command: str, status: ExitStatus | None, limit: float) -> str:
    """ "`python manage.py migrate` exited with status 1", or the timeout it ran past.

    >>> verdict("sleep 9", None, 2.0)
    '`sleep 9` did not finish within its release_timeout of 2s and was stopped'
    """
    if status is None:
        return f"`{command}` did not finish within its release_timeout of {limit:g}s and was stopped"
    return f"`{command}` {status.describe()}"
