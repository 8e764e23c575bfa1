"""Wire formats of the admin API (pydantic, so the OpenAPI document is exact)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Protocol, Self

from pydantic import BaseModel, Field, WithJsonSchema

from roost.api.params import AppNameText, JsonInt, JsonNumber
from roost.config import key_schema, settings_schema
from roost.control import AppDetails, AppSummary, Isolation, QuotaState, Urls, describe_isolation
from roost.control.usage import Usage
from roost.model import (
    PROCESS_NAME_PATTERN,
    App,
    CertSource,
    CertState,
    Deployment,
    DomainCert,
    Event,
    Mode,
    TrafficEntry,
)


class RecordOut(BaseModel):
    """The wire form of a record: each field read from the record's attribute of the same name
    (enums become their values), so a field is never copied by hand. A subclass's `of` is the one
    conversion from its record; it passes only what the record does not hold as it is."""

    @classmethod
    def read(cls, *records: object, **extra: object) -> Self:
        """The attributes of `records` named like this model's fields (a later record's over an
        earlier one's), `extra` on top, validated."""
        fields = {name: getattr(r, name) for r in records for name in cls.model_fields if hasattr(r, name)}
        return cls.model_validate(fields | extra)


class Addressed(Protocol):
    """What InstanceOut needs beyond its fields: the runtime's InstanceInfo has it (the API never
    imports the runtime)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def pid(self) -> int | None: ...


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


ProcessName = Annotated[str, Field(pattern=PROCESS_NAME_PATTERN)]


class ProcessCounts(BaseModel):
    """`roost scale APP --process worker=3`: how many instances of each named process type
    production runs; the types not named keep their count."""

    counts: dict[ProcessName, Annotated[JsonInt, Field(ge=0, le=1000)]] = Field(
        description='process type -> count, e.g. {"worker": 3}'
    )


class ProcessOut(RecordOut):
    """One process type of production: how many should run, how many do, and its restarts."""

    process: str
    deployment: str
    wanted: int
    ready: int
    starting: int
    restarts: int
    crash_looping: bool
    last_failure: str


class AppCreate(BaseModel):
    name: AppNameText
    mode: Mode | None = Field(default=None, description="service or function")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="as in roost.toml", json_schema_extra=settings_schema()
    )


class AppOut(RecordOut):
    name: str
    mode: str
    desired: str
    created_at: float
    updated_at: float
    config: dict[str, Any]
    overrides: dict[str, Any] = Field(default_factory=dict, description="settings changed with `roost scale`")

    @classmethod
    def of(cls, app: App) -> AppOut:
        return cls.read(app, config=app.config.to_dict(), overrides=dict(app.overrides))


class AppSummaryOut(RecordOut):
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
    processes: list[ProcessOut] = Field(default_factory=list, description="production's process types")
    certificate_problems: list[str] = Field(
        default_factory=list, description="custom domains whose certificate failed to renew or expired"
    )

    @classmethod
    def of(cls, summary: AppSummary) -> AppSummaryOut:
        production = summary.production
        return cls.read(
            summary.app,
            summary,
            instances=summary.total,
            production=production.id if production else None,
            production_created_at=production.created_at if production else None,
            traffic=[TrafficOut.of(t) for t in summary.traffic],
            processes=[ProcessOut.read(p) for p in summary.processes],
        )


class DeploymentOut(RecordOut):
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
        if urls is None:
            return cls.read(deployment, weight=weight)
        preview, production = urls.preview(deployment.app, deployment.id), urls.production(deployment.app)
        return cls.read(deployment, weight=weight, preview_url=preview, url=production)


class TrafficOut(RecordOut):
    deployment: str
    weight: int

    @classmethod
    def of(cls, entry: TrafficEntry) -> TrafficOut:
        return cls.read(entry)


class DomainOut(RecordOut):
    """A custom domain and its certificate: `state` is none (plain HTTP), pending, valid, failing
    (the last try failed: `last_error` holds the CA's words, `next_attempt` the retry; an older
    certificate keeps serving until `not_after`) or expired. Times in seconds since the epoch."""

    host: str
    app: str | None = Field(description="the app it routes to; null: the admin API's own name (--api-domain)")
    source: CertSource | None
    state: CertState
    not_before: float | None
    not_after: float | None
    issued_at: float | None
    failures: int
    last_error: str
    next_attempt: float | None
    redirect: bool
    hsts: bool

    @classmethod
    def of(cls, cert: DomainCert) -> DomainOut:
        return cls.read(cert)


class EventOut(RecordOut):
    id: int
    at: float
    app: str | None
    kind: str
    message: str
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls.read(event)


class InstanceOut(RecordOut):
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
    process: str = Field(default="", description='the process type ("worker") of a non-web instance; "" for web')
    memory: int | None = Field(default=None, description="proportional set size in bytes, now")
    cpu: float | None = Field(default=None, description="percent of one core, now")
    isolation: Isolation | None = Field(
        default=None, description="what the instance really got, read back from its running process"
    )
    isolation_summary: list[str] = Field(default_factory=list, description="the same, in a few lines for people")

    @classmethod
    def of(cls, info: Addressed, usage: Mapping[int, Usage], isolation: Isolation | None = None) -> InstanceOut:
        """`info` (an InstanceInfo) with its address and, when measured, its memory and CPU use and
        the isolation read back from its process."""
        address = f"{info.host}:{info.port}"
        measured = usage.get(info.pid) if info.pid is not None else None
        read_back: dict[str, object] = {}
        if isolation is not None:
            read_back = {"isolation": isolation, "isolation_summary": describe_isolation(isolation)}
        if measured is None:
            return cls.read(info, address=address, **read_back)
        return cls.read(info, address=address, memory=measured.memory, cpu=measured.cpu, **read_back)


class QuotaOut(RecordOut):
    pattern: str = Field(description="an app name or a glob such as shop-*")
    instances: int | None
    memory: int | None
    used_instances: int = Field(description="live instances of the covered apps, now")
    used_memory: int = Field(description="the sum of their memory limits, in bytes")
    usage: str = Field(description='in words: "3 of 4 instances, 384M of 2G memory"')
    apps: list[str]

    @classmethod
    def of(cls, state: QuotaState) -> QuotaOut:
        return cls.read(
            state.quota,
            used_instances=state.usage.instances,
            used_memory=state.usage.memory,
            usage=state.describe_usage(),
            apps=list(state.apps),
        )


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
    quotas: list[QuotaOut] = Field(default_factory=list, description="the quotas covering the app, and how full")
    processes: list[ProcessOut] = Field(default_factory=list, description="production's process types")

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
            instances=[InstanceOut.of(i, details.usage, details.isolation.get(i.id)) for i in details.instances],
            builds=[BuildIsolationOut.of(e) for e in details.build_isolation],
            events=[EventOut.of(e) for e in details.events],
            domains=details.domains,
            quotas=[QuotaOut.of(q) for q in details.quotas],
            processes=[ProcessOut.read(p) for p in details.processes],
        )
