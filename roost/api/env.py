"""Environment routes: values are masked unless asked for with reveal=true."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from roost.api.deps import ControlDep

router = APIRouter(tags=["env"])


class EnvSetIn(BaseModel):
    values: dict[str, str] = Field(description="NAME -> value; stored encrypted")


class EnvUnsetIn(BaseModel):
    names: list[str]


class EnvOut(BaseModel):
    name: str
    value: str
    source: str


@router.get("/v1/apps/{name}/env", response_model=list[EnvOut])
async def list_env(name: str, control: ControlDep, reveal: bool = False) -> list[EnvOut]:
    return [EnvOut(name=e.name, value=e.value, source=e.source) for e in await control.list_env(name, reveal)]


@router.post("/v1/apps/{name}/env", response_model=list[str])
async def set_env(name: str, body: EnvSetIn, control: ControlDep) -> list[str]:
    return await control.set_env(name, body.values)


@router.post("/v1/apps/{name}/env/unset", response_model=list[str])
async def unset_env(name: str, body: EnvUnsetIn, control: ControlDep) -> list[str]:
    return await control.unset_env(name, body.names)
