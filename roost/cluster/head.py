"""`roost serve --cluster`: the cluster's token, the Ray head kept running beside the daemon,
and the node table read from it. The daemon owns one `ClusterHead`; it starts with the daemon
and stops with it. Nothing here places work: later stages do, through Ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable

from roost.cluster.cluster_settings import (
    HEAD_AWAY_SECONDS,
    HeadSettings,
    check_temp_dir,
    closed_to_apps,
    cluster_dir,
    head_argv,
    ray_address_file,
    ray_environment,
)
from roost.cluster.cluster_settings import token_path as default_token_path
from roost.cluster.cluster_token import ensure_token
from roost.cluster.gcs import GcsReader
from roost.cluster.installed import has_ray_client, require_ray
from roost.cluster.nodetable import cluster_nodes
from roost.cluster.rayproc import RayCommand, RayKeeper, check_free
from roost.errors import Unavailable
from roost.listeners import bind_tcp
from roost.model import ClusterNode
from roost.runtime.ports import PortRange

log = logging.getLogger("roost.cluster")
HEAD_LOG = "ray-head.log"


class ClusterHead:
    """The head's side of the cluster. `report` hears of Ray's deaths and restarts."""

    def __init__(self, settings: HeadSettings, report: Callable[[str], None] = log.warning) -> None:
        self.settings = settings
        self.report = report
        self.token_path = default_token_path(settings.home)
        self._keeper: RayKeeper | None = None
        self._keeping: asyncio.Task[None] | None = None
        self._reader = GcsReader(settings.gcs_address, self.token_path)
        self.started_in = 0.0  # seconds Ray's head took to come up

    def check(self) -> None:
        """What can be checked before anything starts: Ray installed, the home short enough for
        Ray's sockets, the address this machine's and Ray's ports free. Raises RoostError."""
        s = self.settings
        require_ray("roost serve --cluster")
        check_temp_dir(s.home)
        bind_tcp(s.address, s.port, "cluster's Ray head", "--cluster-address and --cluster-port").close()
        check_free(s.ports)

    async def start(self) -> None:
        """Check again, make the token, start Ray's head and wait until it is up. Raises RoostError."""
        s = self.settings
        self.check()
        temp_dir = check_temp_dir(s.home)
        await asyncio.to_thread(ensure_token, self.token_path)
        command = RayCommand(
            "the cluster's Ray head",
            tuple(head_argv(sys.executable, s, temp_dir, has_ray_client())),
            ray_environment(self.token_path, s.home, os.environ),
            cluster_dir(s.home) / HEAD_LOG,
            stale=(ray_address_file(temp_dir),),
            private=(cluster_dir(s.home),),
        )
        # Started again only once every raylet has given the dead head up (HEAD_AWAY_SECONDS): one that
        # reconnected to the new head at the old address would be a stranger there, out of the
        # cluster until its next liveness self-check made it exit and join again.
        self._keeper = RayKeeper(command, self.report, backoff_first=HEAD_AWAY_SECONDS + 1)
        began = time.monotonic()
        await self._keeper.start()
        self.started_in = time.monotonic() - began
        self._keeping = asyncio.get_running_loop().create_task(self._keeper.keep(), name="ray head")

    async def nodes(self) -> list[ClusterNode]:
        """Every machine that joined, alive or dead; read in a thread (Ray's client blocks).
        Raises Unavailable while Ray's head is down (it is being started again)."""
        keeper = self._keeper
        if keeper is None or not keeper.process.is_running():
            why = f" ({keeper.last_exit})" if keeper is not None and keeper.last_exit else ""
            raise Unavailable(
                f"the cluster's Ray head is not running{why}",
                hint=f"`roost serve --cluster` starts it again, with back-off; Ray's log is {self._keeper_log()}",
            )
        return cluster_nodes(await asyncio.to_thread(self._reader.read))

    def _keeper_log(self) -> str:
        return str(cluster_dir(self.settings.home) / HEAD_LOG)

    def closed_to_apps(self) -> tuple[PortRange, ...]:
        """The ports the sandbox closes to this machine's apps on every address: Ray's."""
        return closed_to_apps(self.settings)

    def describe(self) -> str:
        s = self.settings
        join = f"roost node join {s.gcs_address} --region NAME --token-file <a copy of {self.token_path}>"
        return f"{s.gcs_address}  (Ray's head up in {self.started_in:.1f} s; machines join with: {join})"

    async def close(self) -> None:
        """Stop keeping Ray, then stop it: TERM, grace, KILL of its process group."""
        if self._keeping is not None:
            self._keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeping
        if self._keeper is not None:
            await self._keeper.stop()
