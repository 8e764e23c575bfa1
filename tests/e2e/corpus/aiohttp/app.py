from aiohttp import WSMsgType, web


async def index(request: web.Request) -> web.Response:
    return web.json_response({"framework": "aiohttp", "path": request.path})


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            await ws.send_str(message.data.upper())
    return ws


def init(argv: list[str]) -> web.Application:
    app = web.Application()
    app.add_routes([web.get("/", index), web.get("/ws", echo)])
    return app
