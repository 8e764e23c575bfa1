"""`python -m roost.cluster.raybridge FD ADDRESS`: the head's Ray driver, in a process of its own.

A Ray driver whose head (GCS) stays away for a minute terminates its whole process; the daemon
must outlive Ray's restarts, so it drives Ray through this child instead (`placement.RayCluster`).
It speaks the agent relay's frames (`agent_wire`) over the socket FD: first ("ready",) once
connected, then, for each request (call id, operation, args), a reply (call id, ok or error) as
soon as that one is done; several run at once. It exits at once when the daemon closes the socket
(or dies), and Ray's placement groups and actors of this driver go with it.

With `gcs.py`, the only module of Roost that imports Ray.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from typing import Any

import ray
from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from roost.cluster.agent import NodeAgent
from roost.cluster.agent_wire import encode, error, ok, read_frame
from roost.cluster.cluster_settings import MEMORY_RESOURCE
from roost.errors import RoostError, Unavailable

NAMESPACE = "roost"
AGENT_CONCURRENCY = 32  # calls in flight to one node's agent: reports, maps, a build, stops


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


class Bridge:
    """The operations the daemon asks of Ray, by name (`op_<name>`)."""

    def __init__(self) -> None:
        self._groups: dict[str, Any] = {}
        self._agents: dict[str, Any] = {}
        remote: Any = ray.remote  # its stubs know no actor options
        self._agent_class = remote(num_cpus=0, max_concurrency=AGENT_CONCURRENCY)(NodeAgent)

    async def op_nodes(self) -> list[tuple[str, bool, float, str]]:
        nodes = await asyncio.to_thread(ray.nodes)
        return [
            (
                str(n["NodeID"]),
                bool(n["Alive"]),
                float(n.get("Resources", {}).get(MEMORY_RESOURCE, 0.0)),
                str(n.get("NodeManagerAddress", "")),
            )
            for n in nodes
        ]

    async def op_reserve(self, bundle: dict[str, float]) -> str:
        group = placement_group([bundle], strategy="PACK")
        key = str(group.id.hex())
        self._groups[key] = group
        return key

    async def op_placed(self, key: str, within: float) -> bool:
        try:
            await asyncio.wait_for(self._awaited(self._groups[key].ready()), within)
        except TimeoutError:
            return False
        return True

    async def op_where(self, keys: list[str]) -> dict[str, str | None]:
        return await asyncio.to_thread(self._where, keys)

    def _where(self, keys: list[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for key in keys:
            group = self._groups.get(key)
            table = placement_group_table(group) if group is not None else {}
            node = table.get("bundles_to_node_id", {}).get(0) if table.get("state") == "CREATED" else None
            found[key] = str(node) if node else None
        return found

    async def op_release(self, key: str) -> None:
        group = self._groups.pop(key, None)
        if group is not None:
            await asyncio.to_thread(remove_placement_group, group)

    async def op_call(self, node_id: str, method: str, args: tuple[Any, ...], within: float) -> Any:
        agent = self._agents.get(node_id)
        if agent is None:
            strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
            options = {"name": f"agent-{node_id}", "get_if_exists": True, "scheduling_strategy": strategy}
            agent = self._agents[node_id] = self._agent_class.options(**options).remote()
        try:
            return await asyncio.wait_for(self._awaited(getattr(agent, method).remote(*args)), within)
        except TimeoutError:
            raise Unavailable(f"node {node_id[:12]} did not answer {method} within {within:g} s") from None
        except RoostError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray's: the actor or its node died, the call failed there
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RoostError):
                raise cause from None
            if type(exc).__name__ in ("ActorDiedError", "ActorUnavailableError", "RayActorError"):
                self._agents.pop(node_id, None)  # a node that comes back gets a new one
            raise Unavailable(f"node {node_id[:12]} failed {method}: {_first_line(exc)}") from None

    @staticmethod
    async def _awaited(ref: Any) -> Any:
        return await ref


async def _answer(bridge: Bridge, request: tuple[int, str, tuple[Any, ...]], writer: asyncio.StreamWriter) -> None:
    call, name, args = request
    try:
        reply = ok(await getattr(bridge, f"op_{name}")(*args))
    except RoostError as exc:
        reply = error(exc)
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the daemon, in words
        reply = error(Unavailable(f"Ray failed {name}: {_first_line(exc)}"))
    writer.write(encode((call, reply)))


async def serve(fd: int, address: str) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    await asyncio.to_thread(
        ray.init,
        address=address,
        namespace=NAMESPACE,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    bridge = Bridge()
    writer.write(encode(("ready",)))
    tasks: set[asyncio.Task[None]] = set()
    while True:
        try:
            request = await read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            # The daemon closed the socket (or died): leave at once. Not through `ray.shutdown` and
            # the executor's threads: with Ray's head gone too they wait for it, and the process
            # outlived a killed daemon. Ray forgets a dead driver's groups and actors by itself.
            os._exit(0)
        task = asyncio.create_task(_answer(bridge, request, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def main() -> None:
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2]))


if __name__ == "__main__":
    main()
