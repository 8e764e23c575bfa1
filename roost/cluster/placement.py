"""The head's hands on Ray: the driver connection, one single-bundle placement group per
instance, the node list, and the agent actor pinned to each node. With `gcs.py`, the only
module of Roost that imports Ray, and only once `roost serve --cluster` connects.

Ray's client calls block: each runs in a thread; object refs (a placement group's readiness, an
actor call's result) are awaited on the event loop. Nothing here decides how many instances run
or where: `ClusterRuntime` (runtime.py) decides how many, Ray where.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roost.cluster.agent import NodeAgent
from roost.cluster.cluster_settings import MEMORY_RESOURCE, REGION_RESOURCE_PREFIX
from roost.errors import RoostError, Unavailable

log = logging.getLogger("roost.cluster")
NAMESPACE = "roost"
REGION_SHARE = 0.001  # of a node's `roost_region_<r>: 1`: a mark that the bundle wants region r, not a limit
TIMEOUT_CONNECT = 60.0


@dataclass(frozen=True, slots=True)
class RayNodeState:
    """A node as Ray sees it now: id (hex), alive, and whether it offers instance memory."""

    node_id: str
    alive: bool
    memory: float
    address: str


class Reservation:
    """One instance's place: a placement group with one bundle of the app's memory limit."""

    __slots__ = ("memory", "pg", "region")

    def __init__(self, pg: Any, memory: int, region: str) -> None:
        self.pg = pg
        self.memory = memory
        self.region = region

    @property
    def id(self) -> str:
        return str(self.pg.id.hex())


class Agent:
    """The agent actor on one node: `call` relays one `NodeHost` method and awaits its answer."""

    def __init__(self, node_id: str, handle: Any) -> None:
        self.node_id = node_id
        self._handle = handle

    async def call(self, method: str, *args: Any, timeout: float) -> Any:  # noqa: ASYNC109 - per call, said in words
        """The method's result; raises the node's RoostError as it was raised there, and
        Unavailable when the node (or its actor) did not answer within `timeout`."""
        ref = getattr(self._handle, method).remote(*args)
        try:
            return await asyncio.wait_for(_awaitable(ref), timeout)
        except RoostError:
            raise
        except TimeoutError as exc:
            raise Unavailable(f"node {self.node_id[:12]} did not answer {method} within {timeout:g} s") from exc
        except Exception as exc:  # Ray's own: the actor died, the node was lost, the task failed
            cause = exc.cause if hasattr(exc, "cause") and isinstance(exc.cause, RoostError) else None
            if cause is not None:
                raise cause from exc
            raise Unavailable(f"node {self.node_id[:12]} failed {method}: {_first_line(exc)}") from exc


def _awaitable(ref: Any) -> Any:
    async def wait() -> Any:
        return await ref

    return wait()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class RayCluster:
    """The driver's connection to the cluster's Ray head at `address` with the token at `token`."""

    def __init__(self, address: str, token: Path) -> None:
        self.address = address
        self.token = token
        self._ray: Any = None
        self._pg: Any = None
        self._agent_class: Any = None
        self._affinity: Any = None

    async def connect(self) -> None:
        """Join as the driver (in a thread: Ray's init blocks for a few seconds)."""
        await asyncio.wait_for(asyncio.to_thread(self._connect), TIMEOUT_CONNECT)

    def _connect(self) -> None:
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(self.token)
        import ray  # here: a single-machine daemon never loads Ray
        import ray.util.placement_group as pg
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray.init(
            address=self.address,
            namespace=NAMESPACE,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
        self._ray, self._pg, self._affinity = ray, pg, NodeAffinitySchedulingStrategy
        self._agent_class = ray.remote(num_cpus=0, max_concurrency=32)(NodeAgent)

    @property
    def connected(self) -> bool:
        return self._ray is not None

    async def nodes(self) -> list[RayNodeState]:
        return await asyncio.to_thread(self._nodes)

    def _nodes(self) -> list[RayNodeState]:
        return [
            RayNodeState(
                str(n["NodeID"]),
                bool(n["Alive"]),
                float(n.get("Resources", {}).get(MEMORY_RESOURCE, 0.0)),
                str(n.get("NodeManagerAddress", "")),
            )
            for n in self._ray.nodes()
        ]

    def reserve(self, memory: int, region: str = "") -> Reservation:
        """Ask Ray for a place for one instance (returns at once; `placed` waits for it)."""
        bundle: dict[str, float] = {MEMORY_RESOURCE: float(memory)}
        if region:
            bundle[REGION_RESOURCE_PREFIX + region] = REGION_SHARE
        return Reservation(self._pg.placement_group([bundle], strategy="PACK"), memory, region)

    async def placed(self, reservation: Reservation, within: float) -> bool:
        """Whether Ray found the place within `within` seconds."""
        try:
            await asyncio.wait_for(_awaitable(reservation.pg.ready()), within)
        except TimeoutError:
            return False
        return True

    async def where(self, reservations: list[Reservation]) -> dict[str, str | None]:
        """Each reservation's node now (by reservation id; None while Ray finds it a new one)."""
        return await asyncio.to_thread(self._where, reservations)

    def _where(self, reservations: list[Reservation]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for reservation in reservations:
            table = self._pg.placement_group_table(reservation.pg)
            node = table.get("bundles_to_node_id", {}).get(0) if table.get("state") == "CREATED" else None
            found[reservation.id] = str(node) if node else None
        return found

    async def release(self, reservation: Reservation) -> None:
        await asyncio.to_thread(self._pg.remove_placement_group, reservation.pg)

    def agent(self, node_id: str) -> Agent:
        """The agent actor on `node_id`, created pinned there (it dies with the node)."""
        handle = self._agent_class.options(
            name=f"agent-{node_id}",
            get_if_exists=True,
            scheduling_strategy=self._affinity(node_id=node_id, soft=False),
        ).remote()
        return Agent(node_id, handle)

    async def close(self) -> None:
        if self._ray is not None:
            await asyncio.to_thread(self._ray.shutdown)
            self._ray = None
