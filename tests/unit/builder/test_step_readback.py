"""A build step's isolation is read back from the step itself, behind the enclosure's wrapper:
`run` tells the watcher (its `on_start`, else the context's STEP_WATCHER) the pid and argv, and
the readback finds the process once it has executed the step."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from roost.builder.enclosure import Enclosure, home_id
from roost.builder.process import STEP_WATCHER, run
from roost.control.isolation import step_name
from roost.runtime.isolation import Isolation
from roost.runtime.sandbox.cgroup import GroupLimits
from roost.runtime.sandbox.cgroup_hierarchy import CgroupVersion, Hierarchy, detect_here
from roost.runtime.sandbox.readback import Vantage, isolation_of_program

STEP = [sys.executable, "-c", "import time; time.sleep(2)"]
PIDS = 33


@pytest.fixture
def hierarchy() -> Iterator[Hierarchy]:
    found = detect_here(Path("/sys/fs/cgroup"), f"roost-steps-{secrets.token_hex(4)}")
    if found.version is CgroupVersion.NONE:
        pytest.fail(f"this machine should have cgroups for Roost: {found.why}")
    try:
        yield found
    finally:
        for parent in found.parents.values():
            with contextlib.suppress(OSError):
                parent.rmdir()


async def read_steps(enclosure: Enclosure, tmp_path: Path, through_context: bool) -> list[Isolation | None]:
    """Run STEP under `enclosure` and read back the step as `run` reports it."""
    reads: list[asyncio.Task[Isolation | None]] = []

    def started(pid: int, argv: Sequence[str]) -> None:
        vantage = Vantage(paths=(("build dir", tmp_path),))
        reads.append(asyncio.get_running_loop().create_task(isolation_of_program(pid, argv, vantage, 10.0)))

    lines: list[str] = []
    if through_context:
        token = STEP_WATCHER.set(started)
        try:
            completed = await run(STEP, cwd=tmp_path, env={}, log=lines.append, enclosure=enclosure)
        finally:
            STEP_WATCHER.reset(token)
    else:
        completed = await run(STEP, cwd=tmp_path, env={}, log=lines.append, enclosure=enclosure, on_start=started)
    assert completed.ok, lines
    return list(await asyncio.gather(*reads))


@pytest.mark.parametrize("through_context", [False, True], ids=["on_start", "STEP_WATCHER"])
def test_the_step_is_read_back_in_the_builds_group(hierarchy: Hierarchy, tmp_path: Path, through_context: bool) -> None:
    group = hierarchy.create("builds", GroupLimits(memory=200 * 1024 * 1024, cpu=1.0, pids=PIDS))
    try:
        enclosure = Enclosure(home_id(tmp_path), tuple(str(p) for p in group.procs_files()))
        reads = asyncio.run(read_steps(enclosure, tmp_path, through_context))
    finally:
        group.remove()
    assert len(reads) == 1 and reads[0] is not None, reads
    seen = reads[0]
    assert seen.command == sys.executable  # the step, not enter.py's launcher before it executed
    assert seen.cgroup is not None and seen.cgroup.path.endswith("/builds") and seen.cgroup.pids_max == PIDS
    assert seen.identity is not None and seen.identity.uid[1] == os.geteuid()
    assert seen.filesystem is not None and seen.filesystem.paths[0].label == "build dir"


def test_a_step_that_ends_at_once_reads_back_as_nothing(tmp_path: Path) -> None:
    async def main() -> Isolation | None:
        process = await asyncio.create_subprocess_exec("/bin/true")
        await process.wait()
        return await isolation_of_program(process.pid, ["/bin/true"], Vantage(), 5.0)

    assert asyncio.run(main()) is None


def test_step_names_are_a_few_words() -> None:
    assert step_name(["/x/uv", "pip", "install", "--python", "/v/bin/python", "flask"]) == "uv pip install"
    assert step_name(["/v/bin/python", "-m", "compileall", "-q", "/code"]) == "python -m compileall"
    assert step_name(["/v/bin/python", "/code/release.py"]) == "python"
