import asyncio
import time
from collections.abc import AsyncIterator

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route


async def ticks(request: Request) -> EventSourceResponse:
    count = int(request.query_params.get("count", "5"))

    async def events() -> AsyncIterator[dict[str, str]]:
        for n in range(count):
            yield {"event": "tick", "data": f"{n} {time.time()}"}
            await asyncio.sleep(0.5)

    return EventSourceResponse(events())


app = Starlette(routes=[Route("/ticks", ticks)])
