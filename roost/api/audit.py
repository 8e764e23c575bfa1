"""The audit route: who called the admin API to change what, filtered in the store."""

from __future__ import annotations

import time

from fastapi import APIRouter, Query
from pydantic import Field

from roost.api.deps import ControlDep
from roost.api.params import AppNameQuery
from roost.api.schemas import RecordOut
from roost.control import AuditEntry, AuditQuery

router = APIRouter(tags=["audit"])
LIMIT_MAX = 10_000


class AuditOut(RecordOut):
    id: int
    at: float
    app: str | None = Field(description="the app the call was about, when its path names one")
    user: str = Field(description='user or token name; "local" for the Unix socket')
    kind: str = Field(description='how they logged in: "socket", "loopback", "password", "token"')
    address: str = Field(description='client address, or "unix-socket"')
    method: str
    path: str
    action: str = Field(description="the method, or what was done when it says more (secret.reveal)")
    status: int

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditOut:
        return cls.read(entry)


@router.get("/v1/audit", response_model=list[AuditOut])
async def audit(
    control: ControlDep,
    app: AppNameQuery = None,
    user: str | None = Query(None, description="only calls by this user or token"),
    action: str | None = Query(None, description="only this action or HTTP method (POST, DELETE, ...)"),
    since: float | None = Query(None, ge=0, description="seconds back from now"),
    limit: int = Query(50, ge=1, le=LIMIT_MAX, description="the newest this many, oldest first"),
) -> list[AuditOut]:
    start = time.time() - since if since is not None else None
    query = AuditQuery(app=app, user=user, action=action, since=start, limit=limit)
    return [AuditOut.of(e) for e in await control.audit.entries(query)]
