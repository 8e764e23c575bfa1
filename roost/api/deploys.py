"""Deploy routes: blobs, deployments, build logs, promote, rollback, traffic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StringConstraints

from roost.api.deps import ControlDep
from roost.api.schemas import DeploymentOut, TrafficOut

router = APIRouter(tags=["deployments"])

MAX_SOURCES = 64  # a push names about 20 settings; the bound keeps a client from storing megabytes
SourceText = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class BlobOut(BaseModel):
    digest: str
    size: int


class PushIn(BaseModel):
    digest: str = Field(description="sha256:<hex> of an uploaded archive")
    message: str = ""
    settings: dict[str, Any] = Field(default_factory=dict, description="roost.toml settings merged with CLI flags")
    promote: bool = True
    sources: dict[SourceText, SourceText] = Field(
        default_factory=dict,
        max_length=MAX_SOURCES,
        description='where each setting came from, e.g. {"mode": "roost push --mode", "scale.max": "roost.toml"}',
    )


class PromoteIn(BaseModel):
    deployment: str


class RollbackIn(BaseModel):
    deployment: str | None = None


class TrafficIn(BaseModel):
    weights: dict[str, int] = Field(description="deployment id -> weight; they add up to 100")


@router.head("/v1/blobs/{digest}")
async def has_blob(digest: str, control: ControlDep) -> Response:
    return Response(status_code=200 if control.registry.has(digest) else 404)


@router.put("/v1/blobs/{digest}", response_model=BlobOut, status_code=201)
async def put_blob(digest: str, request: Request, control: ControlDep) -> BlobOut:
    path = await control.registry.put(digest, request.stream())
    return BlobOut(digest=digest, size=path.stat().st_size)


@router.post("/v1/apps/{name}/deployments", response_model=DeploymentOut, status_code=202)
async def push(name: str, body: PushIn, control: ControlDep) -> DeploymentOut:
    deployment = await control.push(name, body.digest, body.message, body.settings, body.promote, body.sources)
    return DeploymentOut.of(deployment, urls=control.urls)


@router.get("/v1/apps/{name}/deployments", response_model=list[DeploymentOut])
async def list_deployments(name: str, control: ControlDep) -> list[DeploymentOut]:
    deployments, traffic = await control.deployments(name)
    weights = {t.deployment: t.weight for t in traffic}
    return [DeploymentOut.of(d, weights.get(d.id, 0), control.urls) for d in deployments]


@router.get("/v1/apps/{name}/deployments/{deployment}", response_model=DeploymentOut)
async def show_deployment(name: str, deployment: str, control: ControlDep) -> DeploymentOut:
    found = await control.deployment(name, deployment)
    _, traffic = await control.deployments(name)
    weights = {t.deployment: t.weight for t in traffic}
    return DeploymentOut.of(found, weights.get(found.id, 0), control.urls)


@router.get("/v1/apps/{name}/deployments/{deployment}/log", response_class=StreamingResponse)
async def build_log(name: str, deployment: str, control: ControlDep) -> StreamingResponse:
    """The build's output, streamed line by line until the build ends."""
    await control.deployment(name, deployment)

    async def lines() -> AsyncIterator[bytes]:
        async for line in control.buildlogs.follow(name, deployment):
            yield (line + "\n").encode()

    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")


@router.post("/v1/apps/{name}/promote", response_model=DeploymentOut)
async def promote(name: str, body: PromoteIn, control: ControlDep) -> DeploymentOut:
    return DeploymentOut.of(await control.promote(name, body.deployment), 100, control.urls)


@router.post("/v1/apps/{name}/rollback", response_model=DeploymentOut)
async def rollback(name: str, body: RollbackIn, control: ControlDep) -> DeploymentOut:
    return DeploymentOut.of(await control.rollback(name, body.deployment), 100, control.urls)


@router.put("/v1/apps/{name}/traffic", response_model=list[TrafficOut])
async def set_traffic(name: str, body: TrafficIn, control: ControlDep) -> list[TrafficOut]:
    return [TrafficOut.of(t) for t in await control.set_traffic(name, body.weights)]
