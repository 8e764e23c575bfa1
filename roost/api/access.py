"""Token routes: create (shown once), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from roost.api.deps import ControlDep
from roost.api.params import TokenName, TokenNameText

router = APIRouter(tags=["access"])


class TokenIn(BaseModel):
    name: TokenNameText


class TokenCreated(BaseModel):
    name: str
    token: str


class TokenOut(BaseModel):
    name: str
    created_at: float
    last_used_at: float | None


@router.post("/v1/tokens", response_model=TokenCreated, status_code=201)
async def create_token(body: TokenIn, control: ControlDep) -> TokenCreated:
    return TokenCreated(name=body.name, token=await control.create_token(body.name))


@router.get("/v1/tokens", response_model=list[TokenOut])
async def list_tokens(control: ControlDep) -> list[TokenOut]:
    return [TokenOut(name=n, created_at=c, last_used_at=u) for n, c, u in await control.list_tokens()]


@router.delete("/v1/tokens/{name}", status_code=204)
async def revoke_token(name: TokenName, control: ControlDep) -> Response:
    await control.revoke_token(name)
    return Response(status_code=204)
