"""Every error leaves the API as `{"error", "message", "hint"}` with its status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from roost.errors import RoostError, is_no_space, no_space

log = logging.getLogger("roost.api")


def install_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(RoostError)
    async def roost_error(_: Request, exc: RoostError) -> JSONResponse:
        return JSONResponse(exc.to_wire(), status_code=exc.status)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p != 'body')}: {err.get('msg', 'invalid')}"
            for err in exc.errors()
        )
        body = {
            "error": "invalid_request",
            "message": f"the request is not valid: {problems}",
            "hint": "see /openapi.json for the expected body",
        }
        return JSONResponse(body, status_code=422)

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = {
            "error": code,
            "message": f"{request.method} {request.url.path}: {exc.detail}",
            "hint": "see /openapi.json for the routes there are",
        }
        return JSONResponse(body, status_code=exc.status_code)

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_no_space(exc):  # a write no use case translated (the store, a log): still the disk's fault
            full = no_space(request.app.state.control.home)
            return JSONResponse(full.to_wire(), status_code=full.status)
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        body = {
            "error": "internal",
            "message": f"internal error: {type(exc).__name__}",
            "hint": "the daemon's log has the traceback; please report it",
        }
        return JSONResponse(body, status_code=500)
