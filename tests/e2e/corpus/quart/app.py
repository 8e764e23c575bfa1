from quart import Quart, request

app = Quart(__name__)


@app.get("/")
async def index() -> str:
    return "Hello from Quart!"


@app.post("/sum")
async def total() -> dict[str, int]:
    numbers = await request.get_json()
    return {"sum": sum(numbers)}
