"""Token routes: create (shown once, with its role and apps), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StrictBool, StringConstraints

from roost.api.deps import ControlDep, IdentityDep
from roost.api.params import TokenName, TokenNameText
from roost.api.schemas import RecordOut
from roost.api.scopes import token_grants
from roost.control import TokenInfo
from roost.grants import APP_PATTERN, PATTERN_RULE, Grants, Role

router = APIRouter(tags=["access"])
AppPattern = Annotated[str, StringConstraints(pattern=APP_PATTERN), Field(description=PATTERN_RULE)]


class TokenIn(BaseModel):
    name: TokenNameText
    role: Role | None = Field(None, description="admin (the default), deployer or viewer")
    apps: list[AppPattern] = Field(default_factory=list, max_length=64, description="for deployer and viewer")
    own: StrictBool = Field(False, description="a password user's own token (`roost login`): it has the user's grants")

    def grants(self) -> Grants | None:
        if self.role is None and not self.apps:
            return None
        return Grants.of(self.role or Role.ADMIN, self.apps)


class GrantOut(BaseModel):
    role: Role
    app: str


class TokenCreated(BaseModel):
    name: str
    token: str
    access: str


class TokenOut(RecordOut):
    name: str
    created_at: float
    last_used_at: float | None
    admin: bool
    grants: list[GrantOut]
    user: str | None = Field(description="the password user whose grants the token has (`roost login`)")
    access: str = Field(description="what it may do, in words: 'admin', 'deployer on shop-*'")

    @classmethod
    def of(cls, info: TokenInfo) -> TokenOut:
        return cls.read(
            info,
            admin=info.grants.admin and info.user is None,
            grants=[GrantOut(role=g.role, app=g.pattern) for g in info.grants.scoped] if info.user is None else [],
            access=f"as user {info.user}" if info.user else info.grants.describe(),
        )


@router.post("/v1/tokens", response_model=TokenCreated, status_code=201)
async def create_token(body: TokenIn, control: ControlDep, identity: IdentityDep) -> TokenCreated:
    grants, user = token_grants(identity, body.grants(), body.own)
    token = await control.create_token(body.name, grants, user)
    return TokenCreated(name=body.name, token=token, access=f"as user {user}" if user else grants.describe())


@router.get("/v1/tokens", response_model=list[TokenOut])
async def list_tokens(control: ControlDep) -> list[TokenOut]:
    return [TokenOut.of(info) for info in await control.list_tokens()]


@router.delete("/v1/tokens/{name}", status_code=204)
async def revoke_token(name: TokenName, control: ControlDep) -> Response:
    await control.revoke_token(name)
    return Response(status_code=204)
