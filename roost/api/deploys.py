"""Deploy routes: blobs, deployments, build logs, promote, rollback, traffic, branch aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, BeforeValidator, Field, StrictBool, StringConstraints

from roost.api.deps import ControlDep
from roost.api.params import AliasName, AliasText, AppName, AppNameQuery, Digest, DigestText, json_integer
from roost.api.schemas import DeploymentOut, TrafficOut
from roost.config import settings_schema
from roost.control import Urls
from roost.errors import NotFound, UsageError
from roost.model import TRAFFIC_WEIGHT_MAX, Alias

router = APIRouter(tags=["deployments"])

BLOB_MEDIA_TYPE = "application/octet-stream"  # a source archive (tar.gz)
MAX_SOURCES = 64  # a push names about 20 settings; the bound keeps a client from storing megabytes
SourceText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Weight = Annotated[int, Field(ge=0, le=TRAFFIC_WEIGHT_MAX), BeforeValidator(json_integer)]


class BlobOut(BaseModel):
    digest: str
    size: int


class PushIn(BaseModel):
    digest: DigestText
    message: str = ""
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="roost.toml settings merged with CLI flags",
        json_schema_extra=settings_schema(),
    )
    promote: StrictBool = True
    sources: dict[SourceText, SourceText] = Field(
        default_factory=dict,
        max_length=MAX_SOURCES,
        description='where each setting came from, e.g. {"mode": "roost push --mode", "scale.max": "roost.toml"}',
    )
    alias: AliasText | None = Field(
        default=None, description="a branch alias that moves to this deployment once it is ready"
    )


class PromoteIn(BaseModel):
    deployment: str | None = Field(default=None, description="the deployment to promote; or:")
    alias: AliasText | None = Field(default=None, description="promote the deployment this branch alias serves")


class AliasOut(BaseModel):
    name: str
    deployment: str
    url: str
    updated_at: float

    @classmethod
    def of(cls, alias: Alias, urls: Urls) -> AliasOut:
        return cls(
            name=alias.name,
            deployment=alias.deployment,
            url=urls.preview(alias.app, alias.name),
            updated_at=alias.updated_at,
        )


class RollbackIn(BaseModel):
    deployment: str | None = None


class TrafficIn(BaseModel):
    weights: dict[str, Weight] = Field(min_length=1, description="deployment id -> weight; they add up to 100")


@router.head(
    "/v1/blobs/{digest}",
    response_class=Response,
    responses={200: {"description": "the archive is stored", "content": {BLOB_MEDIA_TYPE: {}}}},
)
async def has_blob(digest: Digest, control: ControlDep, app: AppNameQuery = None) -> Response:
    """200 if the archive is stored (so `roost push` need not upload it again), else 404. `app`:
    the app it is for; a deployer needs a grant on it (without it, on some app)."""
    if not control.registry.has(digest):
        raise NotFound(f"no archive {digest} is stored", hint="upload it with PUT /v1/blobs/{digest}")
    return Response(status_code=200, media_type=BLOB_MEDIA_TYPE)


@router.put("/v1/blobs/{digest}", response_model=BlobOut, status_code=201)
async def put_blob(digest: Digest, request: Request, control: ControlDep, app: AppNameQuery = None) -> BlobOut:
    """Store a source archive; `app` as for HEAD."""
    path = await control.registry.put(digest, request.stream())
    return BlobOut(digest=digest, size=path.stat().st_size)


@router.post("/v1/apps/{name}/deployments", response_model=DeploymentOut, status_code=202)
async def push(name: AppName, body: PushIn, control: ControlDep) -> DeploymentOut:
    deployment = await control.push(
        name, body.digest, body.message, body.settings, body.promote, body.sources, body.alias
    )
    return DeploymentOut.of(deployment, urls=control.urls)


@router.get("/v1/apps/{name}/deployments", response_model=list[DeploymentOut])
async def list_deployments(name: AppName, control: ControlDep) -> list[DeploymentOut]:
    deployments, traffic = await control.deployments(name)
    weights = {t.deployment: t.weight for t in traffic}
    return [DeploymentOut.of(d, weights.get(d.id, 0), control.urls) for d in deployments]


@router.get("/v1/apps/{name}/deployments/{deployment}", response_model=DeploymentOut)
async def show_deployment(name: AppName, deployment: str, control: ControlDep) -> DeploymentOut:
    found = await control.deployment(name, deployment)
    _, traffic = await control.deployments(name)
    weights = {t.deployment: t.weight for t in traffic}
    return DeploymentOut.of(found, weights.get(found.id, 0), control.urls)


@router.get("/v1/apps/{name}/deployments/{deployment}/log", response_class=StreamingResponse)
async def build_log(name: AppName, deployment: str, control: ControlDep) -> StreamingResponse:
    """The build's output, streamed line by line until the build ends."""
    await control.deployment(name, deployment)

    async def lines() -> AsyncIterator[bytes]:
        async for line in control.buildlogs.follow(name, deployment):
            yield (line + "\n").encode()

    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")


@router.post("/v1/apps/{name}/promote", response_model=DeploymentOut)
async def promote(name: AppName, body: PromoteIn, control: ControlDep) -> DeploymentOut:
    """Send all production traffic to `deployment`, or to the one branch alias `alias` serves."""
    if (body.deployment is None) == (body.alias is None):
        raise UsageError(
            "name either a deployment or an alias to promote",
            hint='{"deployment": "ab12cd34"} or {"alias": "feature-x"}',
        )
    if body.alias is not None:
        return DeploymentOut.of(await control.promote_alias(name, body.alias), 100, control.urls)
    return DeploymentOut.of(await control.promote(name, str(body.deployment)), 100, control.urls)


@router.post("/v1/apps/{name}/rollback", response_model=DeploymentOut)
async def rollback(name: AppName, body: RollbackIn, control: ControlDep) -> DeploymentOut:
    return DeploymentOut.of(await control.rollback(name, body.deployment), 100, control.urls)


@router.put("/v1/apps/{name}/traffic", response_model=list[TrafficOut])
async def set_traffic(name: AppName, body: TrafficIn, control: ControlDep) -> list[TrafficOut]:
    return [TrafficOut.of(t) for t in await control.set_traffic(name, body.weights)]


@router.get("/v1/apps/{name}/aliases", response_model=list[AliasOut])
async def list_aliases(name: AppName, control: ControlDep) -> list[AliasOut]:
    """The app's branch aliases, each with the deployment its preview host serves."""
    return [AliasOut.of(alias, control.urls) for alias in await control.aliases.aliases(name)]


@router.delete("/v1/apps/{name}/aliases/{alias}", status_code=204)
async def remove_alias(name: AppName, alias: AliasName, control: ControlDep) -> Response:
    """Forget a branch alias (its host answers 404 from now on); its deployment stays."""
    await control.aliases.remove(name, alias)
    return Response(status_code=204)
