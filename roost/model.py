"""Shared leaf types: ids, states and the frozen records that cross modules.

Pure data: no I/O, imports nothing of Roost. Every module may import this one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NewType

AppName = NewType("AppName", str)
DeploymentId = NewType("DeploymentId", str)
InstanceId = NewType("InstanceId", str)

# A DNS label that never holds '--' (preview hosts use it) nor ends with '-'. The admin API's
# schema carries the same pattern and length (roost/api/params.py).
APP_NAME_PATTERN = r"^[a-z](?:[a-z0-9]|-[a-z0-9])*$"
APP_NAME_MAX_LENGTH = 63
APP_NAME_RE = re.compile(APP_NAME_PATTERN)
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"  # an environment variable's name
TRAFFIC_WEIGHT_MAX = 100  # a deployment's share of production traffic, in percent
APP_NAME_RULE = "1 to 63 characters: lowercase letters, digits and single '-' between them, starting with a letter"
DEPLOYMENT_ID_RE = re.compile(r"[a-z0-9]{8}")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def is_valid_app_name(name: str) -> bool:
    """True for a name usable as an app: a DNS label that never holds '--'."""
    return len(name) <= APP_NAME_MAX_LENGTH and APP_NAME_RE.fullmatch(name) is not None


def new_deployment_id() -> DeploymentId:
    """Eight random lowercase letters and digits: a DNS label of its own."""
    return DeploymentId("".join(secrets.choice(_ID_ALPHABET) for _ in range(8)))


def new_instance_id() -> InstanceId:
    return InstanceId("i" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(9)))


class Mode(StrEnum):
    """How an app's instances live: always on, or started by requests."""

    SERVICE = "service"
    FUNCTION = "function"


class DeploymentStatus(StrEnum):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    PRUNED = "pruned"  # past the retention count: its files are gone, its record stays


class InstanceState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"
    CRASHED = "crashed"


class DesiredState(StrEnum):
    """What the user asked for with start/stop; the store keeps it."""

    RUNNING = "running"
    STOPPED = "stopped"


class AppState(StrEnum):
    """What `roost list` shows: derived from deployments and instances."""

    NEW = "new"
    BUILDING = "building"
    RUNNING = "running"
    SLEEPING = "sleeping"
    STOPPED = "stopped"
    CRASH_LOOPING = "crash-looping"
    FAILED = "failed"


class Network(StrEnum):
    HOST = "host"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ScaleConfig:
    min: int = 0
    max: int = 10
    concurrency: int = 50
    idle_timeout: float = 300.0


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Per-instance limits; the defaults are Globe's."""

    memory: int = 128 * 1024 * 1024
    cpu: float = 0.5
    timeout: float = 5.0  # until the answer starts (its head); then the stream limits apply
    stream_idle: float = 60.0  # longest silence between two reads of an answer under way
    stream_max: float = 3600.0  # longest time an answer may stream once it has started
    body: int = 10 * 1024 * 1024
    network: Network = Network.HOST
    pids: int = 128  # processes and threads per instance
    tmp: int = 64 * 1024 * 1024  # the private /tmp (TMPDIR) of an instance's sandbox
    cpu_budget: float | None = None  # CPU seconds per 10 s window; None: 80 % of `cpu`; 0: no budget

    def cpu_budget_seconds(self, window: float) -> float:
        """The CPU seconds an instance may burn per `window` before it is recycled (0: never)."""
        if self.cpu_budget is None:
            return round(0.8 * self.cpu * window, 3)
        return self.cpu_budget


PROCESS_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,29}$"
PROCESS_NAME_RULE = "1 to 30 characters: lowercase letters, digits, '-' and '_', starting with a letter"
PROCESS_READY_AFTER = 3.0  # seconds a process type must stay up to count as ready
PROCESS_GRACE = 10.0  # seconds between SIGTERM and SIGKILL when a process type's instance stops


@dataclass(frozen=True, slots=True)
class ProcessType:
    """A long-running command of a deployment beside its web instances (`worker = "celery ..."`):
    no $PORT, no HTTP check; ready once it stayed up `ready_after` seconds."""

    name: str
    command: str
    limits: LimitsConfig = field(default_factory=LimitsConfig)  # the app's [limits] with its own on top
    count: int = 1  # how many run for production; `roost scale APP --process NAME=N` changes it
    ready_after: float = PROCESS_READY_AFTER
    grace: float = PROCESS_GRACE  # after SIGTERM, to finish the current job; then SIGKILL

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["limits"]["network"] = self.limits.network.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessType:
        limits = dict(data.get("limits", {}))
        limits["network"] = Network(limits.get("network", Network.HOST.value))
        return cls(
            name=str(data["name"]),
            command=str(data["command"]),
            limits=LimitsConfig(**limits),
            count=int(data.get("count", 1)),
            ready_after=float(data.get("ready_after", PROCESS_READY_AFTER)),
            grace=float(data.get("grace", PROCESS_GRACE)),
        )


@dataclass(frozen=True, slots=True)
class CronJob:
    """A scheduled POST to `path` on the production deployment (Globe's crons)."""

    name: str
    schedule: str  # five fields, UTC
    path: str
    public: bool = False


RELEASE_TIMEOUT_DEFAULT = 300.0  # seconds a release command may run (`release_timeout`)


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """`[check]`: the request a healthy instance answers, and how often it is asked.

    It is the build check, the readiness test of every start and, while an instance runs, its
    liveness check: `failures` failed checks in a row, one every `interval`, restart it.
    """

    path: str = "/"
    status: int | None = None  # the one status expected; None: any answer below 400
    interval: float = 10.0
    timeout: float = 5.0
    failures: int = 3

    def accepts(self, status: int) -> bool:
        return status < 400 if self.status is None else status == self.status

    def expected(self) -> str:
        """ "HTTP 200" or "an HTTP status below 400", for messages."""
        return "an HTTP status below 400" if self.status is None else f"HTTP {self.status}"


@dataclass(frozen=True, slots=True)
class AppConfig:
    """An app's settings in force, after defaults, files and flags."""

    name: str | None = None
    entrypoint: str | None = None
    command: str | None = None
    mode: Mode = Mode.FUNCTION
    preload: bool = True
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    env: dict[str, str] = field(default_factory=dict)
    crons: tuple[CronJob, ...] = ()
    keep: int | None = None  # deployments to keep on disk; None: the daemon's --keep
    auto_restart: bool = True  # a crashed instance is restarted (after a back-off)
    processes: tuple[ProcessType, ...] = ()  # [processes] or the Procfile's other lines

    def process(self, name: str) -> ProcessType | None:
        return next((p for p in self.processes if p.name == name), None)

    release: str | None = None  # a shell line run once per deployment before it takes traffic
    release_timeout: float = RELEASE_TIMEOUT_DEFAULT
    check: HealthCheck | None = None  # None: any answer on `/` is ready, and no liveness check

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `from_dict` reads it back."""
        data = dataclasses.asdict(self)
        data["crons"] = [dataclasses.asdict(job) for job in self.crons]
        data["mode"] = self.mode.value
        data["limits"]["network"] = self.limits.network.value
        data["processes"] = [p.to_dict() for p in self.processes]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppConfig:
        scale = ScaleConfig(**data.get("scale", {}))
        limits_data = dict(data.get("limits", {}))
        limits_data["network"] = Network(limits_data.get("network", Network.HOST.value))
        return cls(
            name=data.get("name"),
            entrypoint=data.get("entrypoint"),
            command=data.get("command"),
            mode=Mode(data.get("mode", Mode.FUNCTION.value)),
            preload=bool(data.get("preload", True)),
            scale=scale,
            limits=LimitsConfig(**limits_data),
            env=dict(data.get("env", {})),
            crons=tuple(CronJob(**job) for job in data.get("crons", [])),
            keep=data.get("keep"),
            auto_restart=bool(data.get("auto_restart", True)),
            processes=tuple(ProcessType.from_dict(p) for p in data.get("processes", [])),
            release=data.get("release"),
            release_timeout=float(data.get("release_timeout", RELEASE_TIMEOUT_DEFAULT)),
            check=HealthCheck(**data["check"]) if data.get("check") else None,
        )


@dataclass(frozen=True, slots=True)
class App:
    name: AppName
    mode: Mode
    desired: DesiredState
    created_at: float
    updated_at: float
    config: AppConfig
    overrides: Mapping[str, Any] = field(default_factory=dict)  # from `roost scale`, as validated settings


@dataclass(frozen=True, slots=True)
class Deployment:
    id: DeploymentId
    app: AppName
    status: DeploymentStatus
    digest: str
    message: str
    created_at: float
    build_seconds: float | None
    config: AppConfig
    error: str = ""
    code_dir: str = ""
    venv_dir: str = ""
    # where the push took each setting from ("mode" -> "roost push --mode", "scale.max" -> "roost.toml");
    # empty for deployments recorded before pushes said so
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrafficEntry:
    deployment: DeploymentId
    weight: int


@dataclass(frozen=True, slots=True)
class Traffic:
    """An app's traffic split, and the one home of the rule "which deployment is production":
    the one with the heaviest weight, on a tie the lowest id (whatever order the entries came
    in). Cron jobs, `roost info`, `roost list`, the settings in force, the release history and
    the edge's internal requests all ask `production`; a deployment with a smaller share (a
    canary) serves requests but is not production.

    >>> split = Traffic.of([TrafficEntry(DeploymentId("b"), 10), TrafficEntry(DeploymentId("a"), 90)])
    >>> split.production, split.serving
    ('a', ('a', 'b'))
    >>> Traffic.of([TrafficEntry(DeploymentId("d2"), 50), TrafficEntry(DeploymentId("d1"), 50)]).production
    'd1'
    >>> Traffic().production is None
    True
    """

    entries: tuple[TrafficEntry, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[TrafficEntry]) -> Traffic:
        """The entries heaviest first, then by deployment id: the order production is read in."""
        return cls(tuple(sorted(entries, key=lambda e: (-e.weight, e.deployment))))

    @classmethod
    def of_pairs(cls, pairs: Iterable[tuple[DeploymentId, int]]) -> Traffic:
        return cls.of(TrafficEntry(deployment, weight) for deployment, weight in pairs)

    @property
    def production(self) -> DeploymentId | None:
        """The deployment that is production, or None when no deployment has weight."""
        top = min(self.entries, key=lambda e: (-e.weight, e.deployment), default=None)
        return top.deployment if top is not None and top.weight > 0 else None

    @property
    def serving(self) -> tuple[DeploymentId, ...]:
        """Every deployment that takes new requests (weight above 0), production first."""
        return tuple(e.deployment for e in Traffic.of(self.entries).entries if e.weight > 0)


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    at: float
    app: AppName | None
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


class CertState(StrEnum):
    """Where a domain's certificate stands."""

    NONE = "none"  # a plain HTTP domain: no HTTPS asked for
    PENDING = "pending"  # asked for, not issued yet
    VALID = "valid"  # issued (or supplied) and not expired
    FAILING = "failing"  # the last issuance or renewal failed; an older certificate may still serve
    EXPIRED = "expired"  # nothing valid is left to serve


class CertSource(StrEnum):
    ACME = "acme"  # obtained and renewed by Roost
    MANUAL = "manual"  # supplied with --cert/--key; never renewed by Roost


@dataclass(frozen=True, slots=True)
class DomainCert:
    """A custom domain with its certificate's state (`roost domains APP list`); `app` None: the
    admin API's own name (`roost serve --api-domain`), which routes to no app."""

    host: str
    app: AppName | None
    source: CertSource | None = None  # None: no certificate asked for
    state: CertState = CertState.NONE
    not_before: float | None = None
    not_after: float | None = None
    issued_at: float | None = None
    failures: int = 0
    last_error: str = ""
    next_attempt: float | None = None  # when the next try is due after a failure
    redirect: bool = True  # HTTP -> HTTPS once a certificate is there
    hsts: bool = False


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """What the store keeps of an instance: enough to find it after a daemon crash."""

    id: InstanceId
    app: AppName
    deployment: DeploymentId
    pid: int | None
    pgid: int | None
    state: InstanceState
    started_at: float
    stopped_at: float | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Quota:
    """At most `instances` instances and `memory` bytes of memory limits, summed over the apps
    whose names match `pattern` (an app name or a glob such as `shop-*`). None: no such cap.
    Its rules live in roost/quotas.py."""

    pattern: str
    instances: int | None = None
    memory: int | None = None


# A branch alias names a stable preview host `<alias>--<app>.<domain>`: a DNS label of its own
# (digits may lead, as in branch names), never holding '--', and short enough that the whole
# host label stays within 63 characters. The admin API's schema carries the pattern.
ALIAS_PATTERN = r"^[a-z0-9](?:[a-z0-9]|-[a-z0-9])*$"
ALIAS_RE = re.compile(ALIAS_PATTERN)
ALIAS_RULE = "lowercase letters, digits and single '-' between them"
DNS_LABEL_MAX_LENGTH = 63
_SLUG_TAG_LENGTH = 6  # hex digits of the branch's hash that keep two cut slugs apart


def alias_max_length(app: str) -> int:
    """The longest alias of `app` whose preview host label `<alias>--<app>` is one DNS label."""
    return DNS_LABEL_MAX_LENGTH - len("--") - len(app)


def is_valid_alias(alias: str, app: str) -> bool:
    """True for an alias usable as `<alias>--<app>`."""
    return 0 < len(alias) <= alias_max_length(app) and ALIAS_RE.fullmatch(alias) is not None


def alias_slug(branch: str, app: str) -> str:
    """A branch name made into an alias of `app` ("" when nothing of it is usable).

    Runs of anything but letters and digits become one '-'; a slug too long for the host is cut
    and tagged with a hash of the branch, so two long branches keep two aliases.

    >>> alias_slug("feature/Login_Page", "shop")
    'feature-login-page'
    >>> len(alias_slug("dependabot/" + "x" * 80, "shop")) == alias_max_length("shop")
    True
    """
    slug = re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-")
    room = alias_max_length(app)
    if len(slug) <= room:
        return slug
    tag = hashlib.sha256(branch.encode()).hexdigest()[:_SLUG_TAG_LENGTH]
    head = slug[: max(room - _SLUG_TAG_LENGTH - 1, 0)].rstrip("-")
    return f"{head}-{tag}" if head else tag[:room]


@dataclass(frozen=True, slots=True)
class Alias:
    """A branch alias of an app: its stable preview host follows `deployment`."""

    app: AppName
    name: str
    deployment: DeploymentId
    updated_at: float


@dataclass(frozen=True, slots=True)
class ClusterNode:
    """One machine of a cluster as `roost nodes` shows it: the newest Ray node it joined as.

    `role` is "head" or "node"; `memory_budget` the bytes of instance memory limits it offers;
    `memory_used` the part of it its instances' placements hold, and `instances` how many run
    there; `ended_at` and `reason` are set once Ray has marked it dead."""

    name: str
    role: str
    region: str
    memory_budget: int
    address: str
    alive: bool
    node_id: str
    started_at: float
    ended_at: float | None = None
    reason: str = ""
    instances: int = 0
    memory_used: int = 0
