"""pick(traffic, cookie, random): weights, stickiness, weight 0; and the cookie on the wire."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from roost.edge import pick
from roost.edge.split import is_split, read_cookie, set_cookie
from roost.model import DeploymentId
from tests.unit.edge.harness import LoopbackRuntime, Plan, route, running_edge, table, uvicorn_app

A, B, C = DeploymentId("aaaaaaaa"), DeploymentId("bbbbbbbb"), DeploymentId("cccccccc")


def test_weights_pick_by_random_value() -> None:
    traffic = ((A, 90), (B, 10))
    assert pick(traffic, None, 0.0) == A
    assert pick(traffic, None, 0.8999) == A
    assert pick(traffic, None, 0.9) == B
    assert pick(traffic, None, 0.99999) == B


def test_ninety_ten_over_many_fresh_clients() -> None:
    rng = random.Random(1)  # noqa: S311 - a seeded split
    counts = Counter(pick(((A, 90), (B, 10)), None, rng.random()) for _ in range(10_000))
    assert 0.085 < counts[B] / 10_000 < 0.115


def test_a_cookie_keeps_a_client_while_its_side_has_weight() -> None:
    assert pick(((A, 90), (B, 10)), B, 0.0) == B
    assert pick(((A, 100), (B, 0)), B, 0.99) == A  # weight 0: no longer kept
    assert pick(((A, 100),), C, 0.5) == A  # a removed deployment
    assert pick(((A, 50), (B, 50)), "garbage", 0.1) == A


def test_weight_zero_gets_no_new_clients_and_nothing_means_none() -> None:
    assert all(pick(((A, 0), (B, 1)), None, r / 100) == B for r in range(100))
    assert pick(((A, 0),), None, 0.5) is None
    assert pick((), None, 0.5) is None


def test_is_split_and_cookie_text() -> None:
    assert is_split(((A, 90), (B, 10)))
    assert not is_split(((A, 100), (B, 0)))
    assert read_cookie("x=1; roost_split_hello=bbbbbbbb; y=2", "roost_split_hello") == B
    assert read_cookie("roost_split_hellox=1", "roost_split_hello") is None
    cookie = set_cookie("hello", B, "")
    assert cookie.startswith("roost_split_hello=bbbbbbbb; Path=/;")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/hello;" in set_cookie("hello", B, "/hello")


async def test_split_through_the_edge_sticks_and_is_about_a_tenth() -> None:
    async with uvicorn_app("first") as first, uvicorn_app("second") as second:
        runtime = LoopbackRuntime()
        a = runtime.add("aaaaaaaa", Plan([first]))
        b = runtime.add("bbbbbbbb", Plan([second]))
        async with running_edge(runtime, table(route("hello", [(a, 90), (b, 10)])), seed=3) as edge:
            counts: Counter[str] = Counter()
            cookies: dict[str, str] = {}
            async with edge.client() as client:
                for _ in range(400):  # fresh clients: no cookie
                    response = await client.request("GET", "/", "hello.localhost")
                    instance = response.headers["x-instance"]
                    counts[instance] += 1
                    cookies[instance] = response.headers["set-cookie"].split(";")[0]
                assert 0.06 < counts["second"] / 400 < 0.14
                for instance, cookie in cookies.items():  # returning clients stay on their side
                    for _ in range(20):
                        response = await client.request("GET", "/", "hello.localhost", {"Cookie": cookie})
                        assert response.headers["x-instance"] == instance
                        assert "set-cookie" not in response.headers


@pytest.mark.parametrize("weights", [((100, 0)), ((100,))])
async def test_no_cookie_when_traffic_is_not_split(weights: tuple[int, ...]) -> None:
    async with uvicorn_app("only") as only:
        runtime = LoopbackRuntime()
        deps = [runtime.add(f"d000000{i}", Plan([only])) for i, _ in enumerate(weights)]
        routes = table(route("hello", list(zip(deps, weights, strict=True))))
        async with running_edge(runtime, routes) as edge, edge.client() as client:
            response = await client.request("GET", "/", "hello.localhost")
            assert response.status == 200
            assert "set-cookie" not in response.headers
