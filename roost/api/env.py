"""Environment routes: values are masked unless asked for with reveal=true."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from roost.api.deps import ControlDep
from roost.api.params import AppName, EnvName
from roost.api.schemas import RecordOut

router = APIRouter(tags=["env"])


class EnvSetIn(BaseModel):
    values: dict[EnvName, str] = Field(
        min_length=1,
        description="NAME -> value; stored encrypted",
        json_schema_extra={"additionalProperties": False},  # pydantic says patternProperties: close the rest
    )


class EnvUnsetIn(BaseModel):
    names: list[str]


class EnvOut(RecordOut):
    name: str
    value: str
    source: str


@router.get("/v1/apps/{name}/env", response_model=list[EnvOut])
async def list_env(name: AppName, control: ControlDep, reveal: bool = False) -> list[EnvOut]:
    return [EnvOut.read(entry) for entry in await control.list_env(name, reveal)]


@router.post("/v1/apps/{name}/env", response_model=list[str])
async def set_env(name: AppName, body: EnvSetIn, control: ControlDep) -> list[str]:
    return await control.set_env(name, body.values)


@router.post("/v1/apps/{name}/env/unset", response_model=list[str])
async def unset_env(name: AppName, body: EnvUnsetIn, control: ControlDep) -> list[str]:
    return await control.unset_env(name, body.names)
