"""Reading the cluster's state from the head's Ray (its GCS): the node table. The one module of
Roost that imports Ray, and only when a cluster command first asks for it.

Ray's client reads its token through RAY_AUTH_MODE and RAY_AUTH_TOKEN_PATH of this process's
environment, so `GcsReader` sets both (the token's path, never the token) before the first
import. Roost's children get explicit environments, so nothing else inherits them. Calls block:
run `read` in a thread.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from roost.cluster.nodetable import RayNode
from roost.errors import AuthError, Unavailable

TIMEOUT_READ = 5.0
TIMEOUT_CONNECT = 1.0  # Ray's client waits 40 s for a GCS that does not answer: ask the port first
ALIVE = 0  # GcsNodeInfo.GcsNodeState.ALIVE


def _ray_client(address: str, token_file: Path) -> Any:
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_file)
    from ray._raylet import GcsClient  # here, when first needed: importing Ray takes 0.4 s and 60 MB

    return GcsClient(address=address)


class GcsReader:
    """The node table of the head at `address` (host:port)."""

    def __init__(self, address: str, token_file: Path) -> None:
        self.address = address
        self.token_file = token_file
        self._client: Any = None

    def read(self, timeout: float = TIMEOUT_READ) -> list[RayNode]:
        """Every node Ray knows, alive or dead. Blocking; raises AuthError when the head refuses
        the token, Unavailable when it does not answer."""
        try:
            if self._client is None:
                self._probe()
                self._client = _ray_client(self.address, self.token_file)
            infos = self._client.get_all_node_info(timeout=timeout)
        except Exception as exc:  # Ray raises its own RPC, auth and timeout errors
            self._client = None  # a restarted head is a new cluster: connect afresh next time
            raise self._translate(exc) from exc
        return [_ray_node(info) for info in infos.values()]

    def _translate(self, exc: Exception) -> AuthError | Unavailable:
        if type(exc).__name__ == "AuthenticationError":  # ray.exceptions', not importable without Ray
            return AuthError(
                f"the cluster's Ray head at {self.address} refused the token in {self.token_file}",
                hint="copy the head's HOME/cluster/token again (owner-only); a head whose token file was "
                "removed made a new one, which every machine needs",
            )
        return Unavailable(
            f"the cluster's Ray head at {self.address} did not answer: {exc}".splitlines()[0],
            hint="check that `roost serve --cluster` runs there (it restarts Ray when Ray dies; Ray's log is "
            "its HOME/cluster/ray-head.log) and that this machine reaches its --cluster-address and --cluster-port",
        )

    def _probe(self) -> None:
        """Raise OSError at once when nothing listens at the head's address."""
        host, _, port = self.address.rpartition(":")
        socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT_CONNECT).close()


def _ray_node(info: Any) -> RayNode:
    death = info.death_info.reason_message if info.HasField("death_info") else ""
    return RayNode(
        node_id=info.node_id.hex(),
        address=info.node_manager_address,
        alive=info.state == ALIVE,
        resources=dict(info.resources_total),
        labels=dict(info.labels),
        start_ms=int(info.start_time_ms),
        end_ms=int(info.end_time_ms),
        death=str(death),
    )
