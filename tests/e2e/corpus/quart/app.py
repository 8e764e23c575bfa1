from quart import Quart, request, websocket

app = Quart(__name__)


@app.get("/")
async def index() -> str:
    return "Hello from Quart!"


@app.post("/sum")
async def total() -> dict[str, int]:
    numbers = await request.get_json()
    return {"sum": sum(numbers)}


@app.websocket("/ws")
async def reverse() -> None:
    while True:
        await websocket.send((await websocket.receive())[::-1])
