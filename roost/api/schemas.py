"""Wire formats of the admin API (pydantic, so the OpenAPI document is exact)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema

from roost.api.params import AppNameText, JsonInt, JsonNumber
from roost.config import key_schema, settings_schema
from roost.control import AppDetails, AppSummary, Isolation, Urls, describe_isolation
from roost.model import App, Deployment, Event, Mode, TrafficEntry


class ErrorOut(BaseModel):
    error: str = Field(description="stable error code, e.g. not_found")
    message: str
    hint: str = ""


class HealthOut(BaseModel):
    ok: bool


class VersionOut(BaseModel):
    version: str
    python: str


def _scale(key: str, description: str = "") -> WithJsonSchema:
    """The schema of `[scale] key` as roost.toml's parser takes it, or null (unchanged)."""
    schema: dict[str, Any] = {"anyOf": [key_schema("scale", key), {"type": "null"}], "default": None}
    return WithJsonSchema(schema | ({"description": description} if description else {}))


class ScaleChange(BaseModel):
    """`roost scale`: only the fields given change; the rest keep their value."""

    min: Annotated[JsonInt | None, _scale("min")] = None
    max: Annotated[JsonInt | None, _scale("max")] = None
    concurrency: Annotated[JsonInt | None, _scale("concurrency")] = None
    idle_timeout: Annotated[str | JsonNumber | None, _scale("idle_timeout", 'seconds, or "5m", "1h"')] = None

    def changes(self) -> dict[str, object]:
        return {key: value for key, value in self.model_dump().items() if value is not None}


class AppCreate(BaseModel):
    name: AppNameText
    mode: Mode | None = Field(default=None, description="service or function")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="as in roost.toml", json_schema_extra=settings_schema()
    )


class AppOut(BaseModel):
    name: str
    mode: str
    desired: str
    created_at: float
    updated_at: float
    config: dict[str, Any]
    overrides: dict[str, Any] = Field(default_factory=dict, description="settings changed with `roost scale`")

    @classmethod
    def of(cls, app: App) -> AppOut:
        return cls(
            name=app.name,
            mode=app.mode.value,
            desired=app.desired.value,
            created_at=app.created_at,
            updated_at=app.updated_at,
            config=app.config.to_dict(),
            overrides=dict(app.overrides),
        )


class AppSummaryOut(BaseModel):
    """One line of `roost list`."""

    name: str
    mode: str
    desired: str
    state: str = Field(description="running, sleeping, starting, stopped, crash-looping, building, failed or empty")
    ready: int
    instances: int
    production: str | None
    production_created_at: float | None
    traffic: list[TrafficOut]
    memory: int = Field(description="bytes in use by the app's instances (proportional set size)")
    url: str
    created_at: float

    @classmethod
    def of(cls, summary: AppSummary) -> AppSummaryOut:
        production = summary.production
        return cls(
            name=summary.app.name,
            mode=summary.app.mode.value,
            desired=summary.app.desired.value,
            state=summary.state,
            ready=summary.ready,
            instances=summary.total,
            production=production.id if production else None,
            production_created_at=production.created_at if production else None,
            traffic=[TrafficOut.of(t) for t in summary.traffic],
            memory=summary.memory,
            url=summary.url,
            created_at=summary.app.created_at,
        )


class DeploymentOut(BaseModel):
    id: str
    app: str
    status: str
    digest: str
    message: str
    created_at: float
    build_seconds: float | None
    error: str
    weight: int = 0
    preview_url: str = ""
    url: str = ""

    @classmethod
    def of(cls, deployment: Deployment, weight: int = 0, urls: Urls | None = None) -> DeploymentOut:
        return cls(
            preview_url=urls.preview(deployment.app, deployment.id) if urls else "",
            url=urls.production(deployment.app) if urls else "",
            id=deployment.id,
            app=deployment.app,
            status=deployment.status.value,
            digest=deployment.digest,
            message=deployment.message,
            created_at=deployment.created_at,
            build_seconds=deployment.build_seconds,
            error=deployment.error,
            weight=weight,
        )


class TrafficOut(BaseModel):
    deployment: str
    weight: int

    @classmethod
    def of(cls, entry: TrafficEntry) -> TrafficOut:
        return cls(deployment=entry.deployment, weight=entry.weight)


class EventOut(BaseModel):
    id: int
    at: float
    app: str | None
    kind: str
    message: str
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(id=event.id, at=event.at, app=event.app, kind=event.kind, message=event.message, data=event.data)


class InstanceOut(BaseModel):
    id: str
    deployment: str
    state: str
    pid: int | None
    address: str
    started_at: float
    start_kind: str
    in_flight: int
    restarts: int
    reason: str
    memory: int | None = Field(default=None, description="proportional set size in bytes, now")
    cpu: float | None = Field(default=None, description="percent of one core, now")
    isolation: Isolation | None = Field(
        default=None, description="what the instance really got, read back from its running process"
    )
    isolation_summary: list[str] = Field(default_factory=list, description="the same, in a few lines for people")


class BuildIsolationOut(BaseModel):
    """One build step's isolation, read back from its process while it ran."""

    deployment: str
    step: str = Field(description='"uv pip install", "python -m compileall"')
    at: float
    isolation: dict[str, Any] = Field(description="as an instance's `isolation`")
    summary: list[str]

    @classmethod
    def of(cls, event: Event) -> BuildIsolationOut:
        data = event.data
        return cls(
            deployment=str(data.get("deployment", "")),
            step=str(data.get("step", "")),
            at=event.at,
            isolation=dict(data.get("isolation") or {}),
            summary=[str(line) for line in data.get("summary") or []],
        )


class AppInfoOut(BaseModel):
    app: AppOut
    settings: dict[str, Any] = Field(description="in force for production: roost.toml with `roost scale` on top")
    sources: dict[str, str] = Field(
        description='where each setting came from: "default", "roost.toml" (or "pyproject.toml"),'
        ' "roost push --mode" (a flag), "guessed by roost push", "roost scale"'
    )
    url: str
    deployments: list[DeploymentOut]
    traffic: list[TrafficOut]
    instances: list[InstanceOut]
    builds: list[BuildIsolationOut] = Field(
        default_factory=list, description="each build step's isolation, for the deployments listed"
    )
    events: list[EventOut]
    domains: list[str]

    @classmethod
    def of(cls, details: AppDetails, urls: Urls) -> AppInfoOut:
        weights = {t.deployment: t.weight for t in details.traffic}
        return cls(
            app=AppOut.of(details.app),
            settings=(details.settings or details.app.config).to_dict(),
            sources=details.sources,
            url=urls.production(details.app.name),
            deployments=[DeploymentOut.of(d, weights.get(d.id, 0), urls) for d in details.deployments],
            traffic=[TrafficOut.of(t) for t in details.traffic],
            instances=[
                InstanceOut(
                    id=i.id,
                    deployment=i.deployment,
                    state=i.state.value,
                    pid=i.pid,
                    address=f"{i.host}:{i.port}",
                    started_at=i.started_at,
                    start_kind=i.start_kind.value,
                    in_flight=i.in_flight,
                    restarts=i.restarts,
                    reason=i.reason,
                    memory=details.usage[i.pid].memory if i.pid in details.usage else None,
                    cpu=details.usage[i.pid].cpu if i.pid in details.usage else None,
                    isolation=details.isolation.get(i.id),
                    isolation_summary=describe_isolation(details.isolation[i.id]) if i.id in details.isolation else [],
                )
                for i in details.instances
            ],
            builds=[BuildIsolationOut.of(e) for e in details.build_isolation],
            events=[EventOut.of(e) for e in details.events],
            domains=details.domains,
        )
