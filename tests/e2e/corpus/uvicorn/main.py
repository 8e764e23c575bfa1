from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def index(request: Request) -> JSONResponse:
    return JSONResponse({"server": "uvicorn", "query": dict(request.query_params)})


app = Starlette(routes=[Route("/", index)])
