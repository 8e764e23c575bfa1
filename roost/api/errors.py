"""Every error leaves the API as `{"error", "message", "hint"}` with its status."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from roost.api.params import RULES
from roost.errors import RequestInvalid, RoostError, is_no_space, no_space

log = logging.getLogger("roost.api")


def install_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(RoostError)
    async def roost_error(_: Request, exc: RoostError) -> JSONResponse:
        return JSONResponse(exc.to_wire(), status_code=exc.status)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(_problem(err) for err in exc.errors())
        error = RequestInvalid(f"the request is not valid: {problems}", hint="see /openapi.json for what is expected")
        return JSONResponse(error.to_wire(), status_code=error.status)

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = {
            "error": code,
            "message": f"{request.method} {request.url.path}: {exc.detail}",
            "hint": "see /openapi.json for the routes there are",
        }
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and (allowed := _allowed_methods(request)):
            headers["Allow"] = ", ".join(allowed)
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

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


def _problem(error: Mapping[str, Any]) -> str:
    """One validation error for a person: where, and the rule in words where params.RULES has it."""
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    pattern = (error.get("ctx") or {}).get("pattern")
    if pattern in RULES:
        noun, rule = RULES[pattern]
        return f"{where}: {error.get('input')!r} is not a valid {noun} ({rule})"
    return f"{where}: {error.get('msg', 'invalid')}"


def _allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document lists at this path, HEAD with GET (Starlette names only
    the first matching route's methods, and FastAPI nests its routes)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), request.url.path):
            methods.update(method.upper() for method in operations)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)
