"""A build log on a full disk: its followers get every line and the end, the disk misses them.
/dev/full is the full disk: every write to it fails with ENOSPC."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from roost.applog import LogBook
from roost.control.buildlog import BuildLogs
from roost.model import AppName, DeploymentId

FULL = Path("/dev/full")


def test_a_full_disk_loses_the_files_not_the_lines_or_the_end(tmp_path: Path) -> None:
    logs = LogBook(tmp_path / "logs")
    builds = BuildLogs(logs, tmp_path / "deployments")
    app, deployment = AppName("hello"), DeploymentId("a1b2c3d4")
    logs.app(app).directory.mkdir(parents=True)
    os.symlink(FULL, logs.app(app).path)  # the app's log file
    build_log = builds.path(app, deployment)
    build_log.parent.mkdir(parents=True)
    os.symlink(FULL, build_log)  # and build.log

    async def build_and_follow() -> list[str]:
        running = builds.open(app, deployment)
        follower = asyncio.ensure_future(collect(builds, app, deployment))
        await asyncio.sleep(0)  # the follower starts before the lines come
        running.line("==> unpacking the archive")
        running.line("error: no space left on the device holding ROOST_HOME (0 MB free)")
        await builds.close(running)
        return await asyncio.wait_for(follower, timeout=10)

    lines = asyncio.run(build_and_follow())
    assert lines == ["==> unpacking the archive", "error: no space left on the device holding ROOST_HOME (0 MB free)"]


async def collect(builds: BuildLogs, app: str, deployment: str) -> list[str]:
    return [line async for line in builds.follow(app, deployment)]
