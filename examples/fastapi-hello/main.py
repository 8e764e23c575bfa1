"""A FastAPI app served by Roost's runner (ASGI), with a slow endpoint for scaling demos."""

import asyncio
import os

from fastapi import FastAPI, Request, WebSocket

app = FastAPI()


@app.get("/")
async def index() -> dict[str, str]:
    return {"hello": "from FastAPI", "instance": os.environ.get("ROOST_INSTANCE", "")}


@app.get("/slow")
async def slow(ms: int = 50) -> dict[str, int]:
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


@app.get("/where")
async def where(request: Request) -> dict[str, str]:
    return {"path": request.url.path, "root_path": request.scope.get("root_path", "")}


@app.websocket("/ws")
async def echo(socket: WebSocket) -> None:
    await socket.accept()
    while True:
        await socket.send_text(await socket.receive_text())
