"""GET /v1/nodes: a cluster head's machines for admins; a clear refusal on a daemon that is no head."""

from __future__ import annotations

from typing import Any

import httpx

from roost.api import create_api
from roost.api.auth import Identity
from roost.grants import Grant, Grants, Role
from roost.model import ClusterNode

NODE = ClusterNode(
    "box-1", "node", "eu", 2 * 1024**3, "10.0.0.2", False, "ab" * 28, 100.0, 160.5, "health check failed"
)


class Cluster:
    """A cluster view that answers from memory (the real one reads Ray's GCS in a thread)."""

    async def nodes(self) -> list[ClusterNode]:
        return [NODE]


def client(cluster: Cluster | None, grants: Grants) -> httpx.AsyncClient:
    api = create_api(None, cluster=cluster)  # type: ignore[arg-type]  # these routes need no Control

    async def signed_in(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope.setdefault("state", {})["identity"] = Identity("t", "token", "127.0.0.1", grants)
        await api(scope, receive, send)

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=signed_in), base_url="http://roost")


async def test_an_admin_sees_each_node_as_the_head_reads_it() -> None:
    async with client(Cluster(), Grants(admin=True)) as api:
        answer = await api.get("/v1/nodes")
    assert answer.status_code == 200
    assert answer.json() == [
        {
            "name": "box-1",
            "role": "node",
            "region": "eu",
            "memory_budget": 2 * 1024**3,
            "address": "10.0.0.2",
            "alive": False,
            "node_id": "ab" * 28,
            "started_at": 100.0,
            "ended_at": 160.5,
            "reason": "health check failed",
            "instances": 0,
            "memory_used": 0,
        }
    ]


async def test_a_daemon_that_is_no_head_says_so_and_how_to_make_one() -> None:
    async with client(None, Grants(admin=True)) as api:
        answer = await api.get("/v1/nodes")
    assert answer.status_code == 409
    assert answer.json()["message"] == "this daemon is not a cluster head"
    assert "roost serve --cluster" in answer.json()["hint"]


async def test_only_admins_see_the_nodes() -> None:
    async with client(Cluster(), Grants(scoped=(Grant(Role.VIEWER, "*"),))) as api:
        answer = await api.get("/v1/nodes")
    assert answer.status_code == 403
