"""Wire formats of the admin API (pydantic, so the OpenAPI document is exact)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from roost.control import AppDetails
from roost.model import App, Deployment, Event, TrafficEntry


class ErrorOut(BaseModel):
    error: str = Field(description="stable error code, e.g. not_found")
    message: str
    hint: str = ""


class HealthOut(BaseModel):
    ok: bool


class VersionOut(BaseModel):
    version: str
    python: str


class AppCreate(BaseModel):
    name: str = Field(description="[a-z][a-z0-9-]{0,62}")
    mode: str | None = Field(default=None, description="service or function")
    settings: dict[str, Any] = Field(default_factory=dict, description="as in roost.toml")


class AppOut(BaseModel):
    name: str
    mode: str
    desired: str
    created_at: float
    updated_at: float
    config: dict[str, Any]

    @classmethod
    def of(cls, app: App) -> AppOut:
        return cls(
            name=app.name,
            mode=app.mode.value,
            desired=app.desired.value,
            created_at=app.created_at,
            updated_at=app.updated_at,
            config=app.config.to_dict(),
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

    @classmethod
    def of(cls, deployment: Deployment, weight: int = 0) -> DeploymentOut:
        return cls(
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


class AppInfoOut(BaseModel):
    app: AppOut
    deployments: list[DeploymentOut]
    traffic: list[TrafficOut]
    events: list[EventOut]

    @classmethod
    def of(cls, details: AppDetails) -> AppInfoOut:
        weights = {t.deployment: t.weight for t in details.traffic}
        return cls(
            app=AppOut.of(details.app),
            deployments=[DeploymentOut.of(d, weights.get(d.id, 0)) for d in details.deployments],
            traffic=[TrafficOut.of(t) for t in details.traffic],
            events=[EventOut.of(e) for e in details.events],
        )
