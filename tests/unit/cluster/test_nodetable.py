"""Ray's node table to Roost's: one row per machine, the newest join wins; pure."""

from __future__ import annotations

from roost.cluster.nodetable import RayNode, cluster_nodes


def ray_node(node_id: str, name: str, start_ms: int, alive: bool = True, **labels: str) -> RayNode:
    return RayNode(
        node_id=node_id,
        address=f"10.0.0.{len(name)}",
        alive=alive,
        resources={"roost_memory": 2.0 * 1024**3, "CPU": 2.0},
        labels={"roost-node": name, "roost-role": "node", **labels},
        start_ms=start_ms,
        end_ms=0 if alive else start_ms + 5000,
        death="" if alive else "health check failed",
    )


def test_a_machine_that_rejoined_is_listed_once_as_it_joined_last() -> None:
    rows = cluster_nodes(
        [
            ray_node("aa", "box", 1000, alive=False, **{"roost-region": "eu"}),
            ray_node("bb", "box", 9000, **{"roost-region": "eu"}),
            ray_node("cc", "other", 5000, alive=False, **{"roost-region": "eu"}),
        ]
    )
    by_name = {row.name: row for row in rows}
    assert (by_name["box"].node_id, by_name["box"].alive, by_name["box"].ended_at) == ("bb", True, None)
    assert (by_name["other"].alive, by_name["other"].ended_at, by_name["other"].reason) == (
        False,
        10.0,
        "health check failed",
    )
    assert by_name["box"].memory_budget == 2 * 1024**3 and by_name["box"].started_at == 9.0


def test_the_head_comes_first_then_regions_and_names() -> None:
    head = RayNode("hh", "10.0.0.1", True, {}, {"roost-node": "head", "roost-role": "head"}, 1, 0)
    rows = cluster_nodes(
        [
            ray_node("1", "b", 1, **{"roost-region": "us"}),
            ray_node("2", "a", 1, **{"roost-region": "us"}),
            ray_node("3", "z", 1, **{"roost-region": "eu"}),
            head,
        ]
    )
    assert [(r.name, r.role, r.region, r.memory_budget) for r in rows] == [
        ("head", "head", "", 0),
        ("z", "node", "eu", 2 * 1024**3),
        ("a", "node", "us", 2 * 1024**3),
        ("b", "node", "us", 2 * 1024**3),
    ]


def test_a_ray_node_no_roost_command_started_is_listed_by_its_id() -> None:
    stranger = RayNode("0123456789abcdef", "10.0.0.9", True, {"CPU": 1.0}, {}, 1, 0)
    (row,) = cluster_nodes([stranger])
    assert (row.name, row.role, row.region, row.memory_budget) == ("0123456789ab", "ray", "", 0)
