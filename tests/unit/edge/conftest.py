"""Fixtures for the edge tests; the edge runs on uvloop in production, so its tests do too."""

from collections.abc import AsyncIterator, Callable, Mapping

import pytest
import uvloop

from roost.edge import EdgeSettings
from tests.unit.edge.harness import LoopbackRuntime, Plan, Running, route, running_edge, table, uvicorn_app

LIMIT_BODY = 1024 * 1024


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Callable[[], object]]:
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
async def hello() -> AsyncIterator[tuple[str, int]]:
    """A uvicorn upstream (h11 parses what the edge sends it)."""
    async with uvicorn_app("a") as address:
        yield address


@pytest.fixture
async def edge(hello: tuple[str, int]) -> AsyncIterator[Running]:
    """An edge in front of app `hello` (one ready instance) and a private path."""
    runtime = LoopbackRuntime()
    dep = runtime.add("dep00001", Plan([hello]))
    routes = table(
        route("hello", [(dep, 100)], body=LIMIT_BODY, private=frozenset({"/_roost/cron"})),
        route("sleepy", [(dep, 100)], stopped=True),
    )
    async with running_edge(runtime, routes, EdgeSettings(timeout_header=2.0)) as running:
        yield running
