from dataclasses import dataclass

from litestar import Litestar, get, post


@dataclass
class Greeting:
    name: str


@get("/")
async def index() -> dict[str, str]:
    return {"framework": "litestar"}


@post("/greet")
async def greet(data: Greeting) -> dict[str, str]:
    return {"hello": data.name}


app = Litestar([index, greet])
