"""Quota routes: set (create or replace), list with usage, remove."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from roost.api.deps import ControlDep
from roost.api.params import QuotaPattern
from roost.api.schemas import QuotaOut

router = APIRouter(tags=["quotas"])


STORE_INT_MAX = 2**63 - 1  # the largest integer SQLite stores


class QuotaIn(BaseModel):
    instances: int | None = Field(
        default=None, ge=1, le=STORE_INT_MAX, description="most instances over the covered apps"
    )
    memory: int | None = Field(
        default=None, ge=1, le=STORE_INT_MAX, description="most bytes of memory limits over the covered apps"
    )


@router.get("/v1/quotas", response_model=list[QuotaOut])
async def list_quotas(control: ControlDep) -> list[QuotaOut]:
    return [QuotaOut.of(s) for s in await control.quotas.quota_states()]


@router.put("/v1/quotas/{pattern}", response_model=QuotaOut)
async def set_quota(pattern: QuotaPattern, body: QuotaIn, control: ControlDep) -> QuotaOut:
    """Create or replace the quota of PATTERN; the covered apps are brought within it."""
    await control.quotas.set_quota(pattern, body.instances, body.memory)
    (state,) = [s for s in await control.quotas.quota_states() if s.quota.pattern == pattern]
    return QuotaOut.of(state)


@router.delete("/v1/quotas/{pattern}", status_code=204)
async def remove_quota(pattern: QuotaPattern, control: ControlDep) -> Response:
    await control.quotas.remove_quota(pattern)
    return Response(status_code=204)
