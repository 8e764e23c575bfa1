"""`roost node join`: this machine as a worker node of the cluster, in the foreground.

Starts the node's daemon (nodedaemon.py: runtime, builder, public edge, peer door, agent socket),
then runs `ray start --block` with the node's resources and labels, restarts it when it dies (Ray
makes a node that was marked dead exit; the restart rejoins it), and on SIGTERM or SIGINT leaves
the cluster and returns, leaving no process behind. systemd-friendly: contrib/roost-node.service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable

from roost.cluster.cluster_settings import NodeSettings, check_temp_dir, cluster_dir, node_argv, ray_environment
from roost.cluster.cluster_token import check_token_file
from roost.cluster.gcs import GcsReader
from roost.cluster.installed import require_ray
from roost.cluster.nodedaemon import NodeDaemon
from roost.cluster.rayproc import RayCommand, RayKeeper, check_free
from roost.units import format_size

NODE_LOG = "ray-node.log"
REJOIN_BACKOFF_MAX = 5.0  # a node whose head restarts tries at least this often to rejoin it


def node_command(settings: NodeSettings) -> RayCommand:
    """Checks the node's settings (Ray installed, token file, home) and says what to run."""
    require_ray("roost node join")
    temp_dir = check_temp_dir(settings.home)
    check_token_file(settings.token_file)
    check_free(settings.ports)
    return RayCommand(
        f"the Ray node {settings.name}",
        tuple(node_argv(sys.executable, settings, temp_dir)),
        ray_environment(settings.token_file, settings.home, os.environ),
        cluster_dir(settings.home) / NODE_LOG,
        private=(cluster_dir(settings.home),),
    )


async def _join_and_keep(keeper: RayKeeper, settings: NodeSettings, announce: Callable[[str], None]) -> None:
    """Ask the head first (a refused token or an unreachable head is said in a second, where Ray
    would retry for half a minute), then start Ray and keep it."""
    await asyncio.to_thread(GcsReader(settings.head, settings.token_file).read)
    await keeper.start()
    announce(
        f"joined {settings.head} as {settings.name} (region {settings.region}, "
        f"memory budget {format_size(settings.memory_budget)}); Ray's log: {keeper.command.log_path}"
    )
    await keeper.keep()


async def serve_node(
    settings: NodeSettings,
    announce: Callable[[str], None],
) -> None:
    """Start the node's daemon, join and stay joined until SIGTERM or SIGINT; then leave: Ray
    stopped, the edges closed, no instance left, the agent socket removed. Raises RoostError when
    the daemon cannot start or the first join fails."""
    keeper = RayKeeper(node_command(settings), announce, backoff_max=REJOIN_BACKOFF_MAX)
    daemon = NodeDaemon(settings, announce)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    work = loop.create_task(_start_and_keep(daemon, keeper, settings, announce), name="node")
    stop = loop.create_task(stopping.wait(), name="signals")
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, stop):
            task.cancel()
        await asyncio.gather(work, stop, return_exceptions=True)
        await keeper.stop()
        await daemon.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    error = None if work.cancelled() else work.exception()
    if error is not None:
        raise error
    announce("left the cluster")


async def _start_and_keep(
    daemon: NodeDaemon, keeper: RayKeeper, settings: NodeSettings, announce: Callable[[str], None]
) -> None:
    await daemon.start()
    await _join_and_keep(keeper, settings, announce)


def run_node(settings: NodeSettings, announce: Callable[[str], None]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_node(settings, announce))
