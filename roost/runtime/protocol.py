"""The runtime's contract with the rest of Roost: the only runtime module the
edge router and the autoscaler may import.

Nothing here assumes that an instance is a local child process: an instance
is an id, a state and an address to forward to. A cluster backend implements
the same `Runtime` protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from roost.model import (
    AppConfig,
    AppName,
    Deployment,
    DeploymentId,
    InstanceId,
    InstanceRecord,
    InstanceState,
    ProcessType,
)
from roost.runtime.isolation import Isolation  # re-exported (see __all__): part of the protocol's vocabulary
from roost.runtime.isolation import describe as describe_isolation

RUNNER_REQUIREMENTS: tuple[str, ...] = (
    "uvicorn>=0.35",  # its websockets-sansio protocol, which the runner names
    "httptools>=0.6.4",
    "uvloop>=0.19",
    "websockets>=13.0",  # WebSockets for every ASGI app, named or not in its requirements
    "a2wsgi>=1.10",
)
"""What Roost's in-instance runner needs inside every deployment's virtual
environment. The builder installs these beside the app's own dependencies and
includes them in the venv cache key."""


class StartKind(StrEnum):
    """How an instance came to be; the edge turns it into X-Roost-Start."""

    FORK = "fork"  # forked from a warm zygote: the request that waited is "warm"
    FRESH = "fresh"  # a new process that imported everything: "cold"


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """Everything the runtime needs to run instances of one deployment.

    `code_dir` holds the unpacked source (the app's working directory, read-only
    to it); `venv_dir` the deployment's virtual environment (`venv_dir/bin/python`);
    `env` the app's own environment (roost.toml [env] and secrets), without
    PORT, TMPDIR or HOME, which the runtime sets.

    The counts of `config.processes` say how many of each process type run (control
    sets them to 0 outside production). `process` is set by the runtime alone, on the
    spec it derives for one process type's instances; control leaves it None.
    """

    app: AppName
    deployment: DeploymentId
    code_dir: Path
    venv_dir: Path
    config: AppConfig
    env: Mapping[str, str] = field(default_factory=dict)
    process: ProcessType | None = None

    @classmethod
    def of(
        cls,
        deployment: Deployment,
        env: Mapping[str, str],
        config: AppConfig | None = None,
        code_dir: Path | None = None,
        venv_dir: Path | None = None,
    ) -> DeploymentSpec:
        """The spec of a stored deployment: its folders and config unless others are given (a
        build in progress has its folders before the store does; control may narrow the config)."""
        return cls(
            deployment.app,
            deployment.id,
            code_dir or Path(deployment.code_dir),
            venv_dir or Path(deployment.venv_dir),
            deployment.config if config is None else config,
            env,
        )


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """A snapshot of one instance, as `roost info` and the router see it."""

    id: InstanceId
    app: AppName
    deployment: DeploymentId
    state: InstanceState
    host: str
    port: int
    pid: int | None
    started_at: float
    start_kind: StartKind
    in_flight: int = 0
    restarts: int = 0
    reason: str = ""  # why it stopped or crashed, in words: "exited with status 3", "killed by SIGKILL"
    process: str = ""  # the process type ("worker") of an instance that takes no requests; "" for web

    def record(self) -> InstanceRecord:
        """What the store keeps of this instance, so `Runtime.recover` can end it after a restart.
        Every instance leads its own process group, so its pid is the group's id too."""
        return InstanceRecord(
            self.id, self.app, self.deployment, self.pid, self.pid, self.state, self.started_at, reason=self.reason
        )


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """One process type of one deployment, for `roost info` and `roost list`."""

    deployment: DeploymentId
    process: str
    wanted: int  # the count in force (0 outside production)
    ready: int  # up for at least `ready_after`
    starting: int
    restarts: int  # restarts after crashes since the deployment was deployed
    crash_looping: bool = False
    last_failure: str = ""


@dataclass(frozen=True, slots=True)
class DeploymentStats:
    """Counters of one deployment, for the autoscaler and `roost list`."""

    deployment: DeploymentId
    ready: int
    starting: int
    draining: int
    in_flight: int
    capacity: int  # free slots on ready instances
    last_request_at: float | None
    crash_streak: int = 0  # crashes in a row; 3 or more is crash-looping
    last_failure: str = ""
    last_start_at: float | None = None  # wall-clock time the newest starting or ready instance started
    crash_looping: bool = False  # the runtime's own verdict on the streak (`roost list` says "crash-looping")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The build check: did one instance listen on $PORT and answer HTTP in time?"""

    ok: bool
    seconds: float
    message: str  # "answered HTTP 200 in 0.41s" or "never listened on $PORT (port 41234) within 30s"
    output: str  # the app's own stdout and stderr, last lines


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    """The release command: did it exit with status 0 within its `release_timeout`?"""

    ok: bool
    seconds: float
    message: str  # "`python manage.py migrate` exited with status 1" or "... did not finish within ..."
    output: str  # its own stdout and stderr, last lines


class Slot:
    """One request's place on a ready instance. Release it exactly once, on
    every path (success, error, cancellation).

    In a cluster a slot may be a place at a peer node's edge rather than on an instance of this
    machine: `node` names that node ("" for an instance here), `headers` are extra request
    headers the edge sends upstream with the request (name, value; e.g. the region a request
    came from, for the head), and `unreachable()` is what the edge calls when it could not
    connect to `host:port` at all (the slot's owner stops handing out that address for a while).
    The edge adds X-Roost-Start and X-Roost-Node only for a slot on an instance here; a peer's
    edge has added its own.
    """

    __slots__ = (
        "_on_unreachable",
        "_release",
        "deployment",
        "headers",
        "host",
        "instance",
        "node",
        "port",
        "released",
        "start_kind",
    )

    def __init__(
        self,
        instance: InstanceId,
        deployment: DeploymentId,
        host: str,
        port: int,
        start_kind: StartKind,
        release: Callable[[Slot], None],
        *,
        node: str = "",
        headers: tuple[tuple[bytes, bytes], ...] = (),
        on_unreachable: Callable[[Slot], None] | None = None,
    ) -> None:
        self.instance = instance
        self.deployment = deployment
        self.host = host
        self.port = port
        self.start_kind = start_kind
        self.node = node
        self.headers = headers
        self.released = False
        self._release = release
        self._on_unreachable = on_unreachable

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._release(self)

    def unreachable(self) -> None:
        """The edge could not connect to `host:port` (refused, unreachable, timed out). Called
        before the slot is released; the edge then retries elsewhere when it safely can."""
        if self._on_unreachable is not None:
            self._on_unreachable(self)


class EventSink(Protocol):
    """Where the runtime records what happened (the daemon writes it to the store).

    `kind` is dotted (`instance.ready`, `instance.crashed`, `zygote.evicted`),
    `message` is for people ("instance i3k... exited with status 3"), `data` is JSON-able.
    """

    def __call__(self, app: AppName, kind: str, message: str, data: Mapping[str, object]) -> None: ...


class RuntimeListener(Protocol):
    """What the runtime tells the edge. Called on the event loop; must not block."""

    def instance_changed(self, info: InstanceInfo) -> None:
        """Any state change of an instance (starting -> ready, ready -> draining, ...)."""

    def capacity_changed(self, deployment: DeploymentId) -> None:
        """A slot freed or an instance became ready: waiters may retry `try_acquire`."""

    def start_failed(self, deployment: DeploymentId, reason: str, retry_after: int | None = None) -> None:
        """An instance could not start (crashed on import, never listened): waiters should fail fast.
        With `retry_after` the host is only full for now (memory budget): shed with 503."""


class Runtime(Protocol):
    """Starts, watches and stops instances; hands out slots on ready ones.

    Example (the edge's activator)::

        slot = runtime.try_acquire(dep)
        if slot is None:
            runtime.request_capacity(dep, waiting + 1)   # one start for many waiters
            ...wait for capacity_changed(dep), then try_acquire again...
        try:
            forward(request, slot.host, slot.port)
        finally:
            slot.release()
    """

    def subscribe(self, listener: RuntimeListener) -> None: ...

    async def deploy(self, spec: DeploymentSpec) -> None:
        """Make a deployment runnable (zygote for preload apps; a service's `min`
        instances). Idempotent: a new spec for a known deployment (new env)
        replaces its instances with a rolling restart."""

    async def retire(self, deployment: DeploymentId) -> None:
        """Drain and stop every instance and the zygote of a deployment, and forget it."""

    def try_acquire(self, deployment: DeploymentId) -> Slot | None:
        """A slot on the least-loaded ready instance with room, or None. Synchronous:
        nothing can take the same slot in between."""

    def request_capacity(self, deployment: DeploymentId, slots: int, region: str = "") -> None:
        """Start instances (never beyond `scale.max`, nor when stopped) unless ready and
        starting instances already cover `slots` requests. Returns at once. `region` is where
        the demand comes from ("" unknown): a cluster runtime prefers to place new instances
        there; a single machine has one place and ignores it."""

    async def start_instance(self, deployment: DeploymentId) -> InstanceInfo:
        """Start one instance and return once it can take requests. Raises
        roost.errors.Unavailable when it could not start."""

    async def stop_instance(self, instance: InstanceId, reason: str) -> None:
        """Drain (no new requests, in-flight finish within the grace), TERM, grace, KILL."""

    async def scale_to(self, deployment: DeploymentId, count: int, reason: str) -> None:
        """Converge on `count` instances (clamped to min/max): start or drain the difference."""

    async def restart(self, deployment: DeploymentId) -> None:
        """Rolling restart: start new instances before draining the old ones."""

    async def drain(self, deployment: DeploymentId) -> None:
        """Stop every instance of the deployment gracefully (the deployment stays known)."""

    def instances(self, deployment: DeploymentId | None = None) -> list[InstanceInfo]: ...

    def stats(self, deployment: DeploymentId) -> DeploymentStats: ...

    async def isolation(self, deployment: DeploymentId | None = None) -> dict[InstanceId, Isolation]:
        """What each live instance (of `deployment`, or all) really got, read back from its own
        process (ids, filesystem view, seccomp, cgroup limits, network, /proc), never from the
        settings. An instance whose process is gone or unknown is left out. Never raises for one
        that cannot be read: the Isolation's `errors` say what was not.

        Example: ``(await runtime.isolation(dep))[instance].identity.uid[1]`` -> 200001"""

    async def isolation_of_build(
        self, pid: int, argv: Sequence[str], app: AppName, build_dir: Path
    ) -> Isolation | None:
        """What a running build step of `app` really got: `pid` is the subprocess the builder
        started for the step `argv` (`uv pip install ...`), which is found behind any wrappers once it
        has executed; `build_dir` its own folder. None when the step ended before it could be read."""

    async def probe(self, spec: DeploymentSpec, limit_seconds: float) -> ProbeResult:
        """The build check: start one throwaway instance with PORT set and see it answer."""

    async def probe_process(self, spec: DeploymentSpec, process: str) -> ProbeResult:
        """The build check of a process type: one throwaway instance of it (no PORT) must stay
        up for its `ready_after`; then it is stopped (TERM, grace, KILL). `output` holds its
        last lines when it ended sooner."""

    def process_stats(self, deployment: DeploymentId) -> list[ProcessStats]:
        """Each process type the runtime keeps for the deployment; [] for none or an unknown one."""

    async def release(self, spec: DeploymentSpec, on_line: Callable[[str], None]) -> ReleaseResult:
        """Run the deployment's `release` command once, confined like an instance, with the app's
        env and no $PORT; each line of its output goes to `on_line` as it comes. Stopped after
        `spec.config.release_timeout`. Never raises for the command's own failure: the result says.
        Example: ``(await runtime.release(spec, log.line)).ok``"""

    async def close(self) -> None:
        """Stop everything (daemon shutdown): drain, TERM, grace, KILL; leave no process."""

    async def recover(self, leftovers: Sequence[InstanceRecord]) -> list[str]:
        """After a daemon restart, before anything is deployed: end what a previous run left
        running of these instances (the store's records of those live when it stopped). Ends
        nothing that is not the runtime's own, nor anything of this run. Returns what it ended,
        in words for the log ("process group 4242"); [] when nothing was left."""


__all__ = [
    "RUNNER_REQUIREMENTS",
    "DeploymentSpec",
    "DeploymentStats",
    "EventSink",
    "InstanceInfo",
    "Isolation",
    "ProbeResult",
    "ProcessStats",
    "ReleaseResult",
    "Runtime",
    "RuntimeListener",
    "Slot",
    "StartKind",
    "describe_isolation",
]
