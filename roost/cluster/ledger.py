"""A node's record of its live instances (`HOME/cluster/instances.json`), so that a node daemon
started again after a crash (a SIGKILL, a lost machine) ends what the previous run left running:
`roost serve` keeps these records in its store; a node has no store.

The file is rewritten (atomically, in a thread) after every change of an instance's state; it
never decides anything about the instances themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path

from roost.model import AppName, DeploymentId, InstanceId, InstanceRecord, InstanceState
from roost.runtime.protocol import InstanceInfo

log = logging.getLogger("roost.cluster.node")
LIVE = frozenset({InstanceState.STARTING, InstanceState.READY, InstanceState.DRAINING})


class InstanceLedger:
    """A `RuntimeListener` that keeps `path` listing the runtime's live instances.

    Example (the node daemon)::

        ended = await runtime.recover(InstanceLedger.leftovers(path))   # before anything is deployed
        ledger = InstanceLedger(path)
        await ledger.start()
        runtime.subscribe(ledger)
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._live: dict[InstanceId, InstanceRecord] = {}
        self._dirty = False
        self._writer: asyncio.Task[None] | None = None

    @staticmethod
    def leftovers(path: Path) -> list[InstanceRecord]:
        """The instances a previous run had live when it last wrote; [] without a (readable) file."""
        try:
            rows = json.loads(path.read_text())
        except (OSError, ValueError):
            return []
        return [
            InstanceRecord(
                InstanceId(row["id"]),
                AppName(row["app"]),
                DeploymentId(row["deployment"]),
                int(row["pid"]),
                int(row["pgid"]),
                InstanceState.READY,
                float(row["started_at"]),
            )
            for row in rows
            if isinstance(row, dict) and isinstance(row.get("pid"), int) and isinstance(row.get("pgid"), int)
        ]

    async def start(self) -> None:
        """Write the (empty) list of this run's instances over the last run's, once it is recovered."""
        await asyncio.to_thread(_write, self.path, "[]")

    def instance_changed(self, info: InstanceInfo) -> None:
        if info.state in LIVE and info.pid:
            self._live[info.id] = info.record()
        elif self._live.pop(info.id, None) is None:
            return
        self._dirty = True
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._flush(), name="instance ledger")

    def capacity_changed(self, deployment: DeploymentId) -> None:
        """Not the ledger's concern."""

    def start_failed(self, deployment: DeploymentId, reason: str, retry_after: int | None = None) -> None:
        """Not the ledger's concern."""

    async def _flush(self) -> None:
        while self._dirty:
            self._dirty = False
            rows = [
                {
                    "id": r.id,
                    "app": r.app,
                    "deployment": r.deployment,
                    "pid": r.pid,
                    "pgid": r.pgid,
                    "started_at": r.started_at,
                }
                for r in self._live.values()
            ]
            try:
                await asyncio.to_thread(_write, self.path, json.dumps(rows))
            except OSError as exc:
                log.warning("could not write the instance ledger %s: %s", self.path, exc)

    async def close(self) -> None:
        """Wait for the last write."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".instances-", suffix=".part")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
