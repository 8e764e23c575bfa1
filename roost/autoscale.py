"""Autoscaler: a pure `decide(spec, state, observation)` and the thin loop that applies it.

Concurrency-based, like Knative's KPA: desired = ceil(average demand / target per
instance), averaged over a stable window and a short panic window. Panic
(demand >= 2x capacity) scales up at once and never down; scale-down waits for
`scale_down_delay` of lower demand in both windows (the stable window alone still remembers
the calm before a burst that the activator scaled for). A quota (roost/quotas.py) caps the count last: the loop
works out what the rest of the quota's group holds and hands `decide` the room that is left.
Sees the runtime only through its protocol.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from roost.model import DeploymentId, Mode, Quota, ScaleConfig
from roost.quotas import Cap, Holding, cap_for
from roost.runtime.protocol import Runtime

log = logging.getLogger("roost.autoscale")


@dataclass(frozen=True, slots=True)
class ScaleSpec:
    min: int
    max: int
    target: int  # requests in flight per instance
    idle_timeout: float
    function: bool
    window_stable: float = 60.0
    window_panic: float = 6.0
    scale_down_delay: float = 30.0
    panic_threshold: float = 2.0
    app: str = ""  # whose quotas apply
    memory: int = 0  # each instance's memory limit, as quotas count it

    @classmethod
    def of(cls, scale: ScaleConfig, mode: Mode, app: str = "", memory: int = 0, **windows: float) -> ScaleSpec:
        function = mode is Mode.FUNCTION
        return cls(
            scale.min, scale.max, scale.concurrency, scale.idle_timeout, function, app=app, memory=memory, **windows
        )


@dataclass(frozen=True, slots=True)
class Observation:
    now: float
    current: int  # ready + starting instances
    samples: tuple[tuple[float, float], ...]  # (time, demand = in flight + queued), oldest first
    last_request_at: float | None
    last_start_at: float | None = None  # when the newest live instance started
    cap: Cap | None = None  # the most instances a quota leaves this deployment now


def idle_since(obs: Observation) -> float | None:
    """Since when the deployment has been idle: the later of its last request and its newest
    instance's start. An instance started seconds ago (by a push, a promote, `roost start`)
    has not been idle for `idle_timeout`, whether or not a request ever came."""
    moments = [at for at in (obs.last_request_at, obs.last_start_at) if at is not None]
    return max(moments) if moments else None


@dataclass(frozen=True, slots=True)
class ScaleState:
    panic_until: float | None = None
    below_since: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    desired: int
    reason: str
    wanted: int | None = None  # what demand asked for, when a quota capped it to `desired`
    cap: Cap | None = None  # that quota


def _average(samples: Iterable[tuple[float, float]], since: float) -> float:
    """Mean demand of the samples in the window (since, now]: a window of 60 s sampled every
    second holds 60 samples, the same rule the loop uses to drop old ones."""
    values = [demand for at, demand in samples if at > since]
    return sum(values) / len(values) if values else 0.0


def averages(spec: ScaleSpec, obs: Observation) -> tuple[float, float]:
    """The (stable, panic) window averages of observed concurrency that `decide` scales on. Pure."""
    return _average(obs.samples, obs.now - spec.window_stable), _average(obs.samples, obs.now - spec.window_panic)


def _floor(spec: ScaleSpec, obs: Observation) -> int:
    """A function keeps one instance while it is not idle; a service keeps min."""
    since = idle_since(obs)
    if spec.function and since is not None and obs.now - since < spec.idle_timeout:
        return max(spec.min, 1)
    return spec.min


def _hold(spec: ScaleSpec, current: int) -> int:
    """No one is waiting now: start nothing for demand that is only in the window's past
    (the runtime may have just put an idle function to sleep), except to keep `min`."""
    return max(min(current, spec.max), spec.min)


def decide(spec: ScaleSpec, state: ScaleState, obs: Observation) -> tuple[Decision, ScaleState]:
    """How many instances the deployment should have now, and why, within its quota. Pure."""
    decision, state = _decide_demand(spec, state, obs)
    return _within(decision, obs.cap), state


def _within(decision: Decision, cap: Cap | None) -> Decision:
    """The decision, capped by the quota: `desired` never above what the quota leaves."""
    if cap is None or decision.desired <= cap.instances:
        return decision
    return Decision(cap.instances, cap.reached(decision.desired), wanted=decision.desired, cap=cap)


def _decide_demand(spec: ScaleSpec, state: ScaleState, obs: Observation) -> tuple[Decision, ScaleState]:
    """How many instances demand and the deployment's own settings ask for, and why."""
    stable, panic = averages(spec, obs)
    want_stable = math.ceil(stable / spec.target - 1e-9)
    want_panic = math.ceil(panic / spec.target - 1e-9)
    floor = _floor(spec, obs)

    def clamp(count: int) -> int:
        return max(floor, min(spec.max, count))

    capacity = obs.current * spec.target
    if panic > 0 and panic >= spec.panic_threshold * capacity:
        state = replace(state, panic_until=obs.now + spec.window_stable)
    if state.panic_until is not None and obs.now < state.panic_until:
        desired = clamp(max(obs.current, want_panic, want_stable)) if panic > 0 else _hold(spec, obs.current)
        why = f"panic: {panic:.1f} in flight over {spec.window_panic:g}s"
        return Decision(desired, why), replace(state, below_since=None)
    state = replace(state, panic_until=None)
    desired = clamp(want_stable)
    if desired > obs.current and panic == 0:
        desired = _hold(spec, obs.current)
        if desired > obs.current:
            return Decision(desired, "keeping the minimum"), replace(state, below_since=None)
    if desired >= obs.current:
        why = f"average {stable:.1f} in flight over {spec.window_stable:g}s, target {spec.target} per instance"
        if desired == floor and desired > want_stable:
            why = "keeping the minimum" if not spec.function or floor == spec.min else "not idle yet"
        return Decision(desired, why), replace(state, below_since=None)
    if desired == 0 and spec.function and stable == 0:
        return Decision(0, f"no request for {spec.idle_timeout:g}s"), replace(state, below_since=None)
    if clamp(want_panic) >= obs.current:
        why = f"{panic:.1f} in flight over the last {spec.window_panic:g}s still needs {obs.current} instances"
        return Decision(obs.current, why), replace(state, below_since=None)
    return _after_the_delay(spec, state, obs, desired, stable)


def _after_the_delay(
    spec: ScaleSpec, state: ScaleState, obs: Observation, desired: int, stable: float
) -> tuple[Decision, ScaleState]:
    """Fewer instances (`desired`) once both windows have wanted fewer for `scale_down_delay`."""
    below_since = state.below_since if state.below_since is not None else obs.now
    if obs.now - below_since < spec.scale_down_delay:
        return Decision(obs.current, "waiting out the scale-down delay"), replace(state, below_since=below_since)
    why = f"demand fell to {stable:.1f} in flight for {spec.scale_down_delay:g}s"
    return Decision(desired, why), replace(state, below_since=None)


Demand = Callable[[DeploymentId], tuple[int, float | None]]  # (in flight + queued, last request time)
Record = Callable[[DeploymentId, int, int, str], Awaitable[None]]
RecordQuota = Callable[[DeploymentId, Decision], Awaitable[None]]  # a quota capped demand (once per episode)


@dataclass(slots=True)
class _Tracked:
    spec: ScaleSpec
    state: ScaleState = field(default_factory=ScaleState)
    samples: deque[tuple[float, float]] = field(default_factory=deque)
    recorded: int | None = None  # desired count of the last recorded decision, until the count gets there
    observed: Observation | None = None  # what the last tick handed to `decide`
    capped: bool = False  # a quota holds demand back: its event is recorded, until demand fits again


class Autoscaler:
    """Samples demand every `interval` and applies `decide` through `runtime.scale_to`."""

    def __init__(
        self,
        runtime: Runtime,
        demand: Demand,
        record: Record,
        interval: float = 1.0,
        record_quota: RecordQuota | None = None,
    ) -> None:
        self._runtime = runtime
        self._demand = demand
        self._record = record
        self._record_quota = record_quota
        self._interval = interval
        self._tracked: dict[DeploymentId, _Tracked] = {}
        self._scaling: dict[DeploymentId, asyncio.Task[None]] = {}
        self._quotas: tuple[Quota, ...] = ()

    def set_quotas(self, quotas: Sequence[Quota]) -> None:
        """The quotas in force; the tracked deployments' counts are what they hold."""
        self._quotas = tuple(quotas)

    def set_specs(self, specs: Mapping[DeploymentId, ScaleSpec]) -> None:
        """The deployments to scale (production ones) and their settings."""
        self._tracked = {
            dep: replace(self._tracked[dep], spec=spec) if dep in self._tracked else _Tracked(spec)
            for dep, spec in specs.items()
        }

    async def run(self) -> None:
        try:
            while True:
                await self.tick(time.time())
                await asyncio.sleep(self._interval)
        finally:
            for task in self._scaling.values():
                task.cancel()

    async def tick(self, now: float) -> None:
        """Observe every deployment, then decide one after the other: a deployment's decision
        counts in its quota group's usage before the next one is capped."""
        tracked_now = list(self._tracked.items())
        observed = {deployment: self._observe(deployment, tracked, now) for deployment, tracked in tracked_now}
        held = {deployment: obs.current for deployment, obs in observed.items()}
        for deployment, tracked in tracked_now:
            obs = tracked.observed = replace(observed[deployment], cap=self._cap(deployment, tracked.spec, held))
            decision, tracked.state = decide(tracked.spec, tracked.state, obs)
            await self._note_quota(deployment, tracked, decision)
            if decision.desired == obs.current:
                tracked.recorded = None  # converged: a later difference is a new decision
            elif deployment not in self._scaling:
                await self._record_once(deployment, tracked, obs.current, decision)
                self._scale(deployment, decision.desired, decision.reason)
                held[deployment] = decision.desired

    def _cap(self, deployment: DeploymentId, spec: ScaleSpec, held: Mapping[DeploymentId, int]) -> Cap | None:
        """What the quotas covering the deployment's app leave it, given what the others hold."""
        if not self._quotas:
            return None
        others: dict[str, Holding] = {}
        for other, count in held.items():
            tracked = self._tracked.get(other)
            if other != deployment and tracked is not None:
                app = tracked.spec.app
                others[app] = others.get(app, Holding()).plus(count, tracked.spec.memory)
        return cap_for(self._quotas, spec.app, spec.memory, others)

    async def _note_quota(self, deployment: DeploymentId, tracked: _Tracked, decision: Decision) -> None:
        """One event when a quota starts holding demand back; the next only after demand fit again."""
        if decision.cap is None:
            tracked.capped = False
            return
        if not tracked.capped and self._record_quota is not None:
            await self._record_quota(deployment, decision)
        tracked.capped = True

    def last_observation(self, deployment: DeploymentId) -> Observation | None:
        """What the last tick saw of `deployment` (its demand samples, instance count), or None."""
        tracked = self._tracked.get(deployment)
        return tracked.observed if tracked is not None else None

    def _observe(self, deployment: DeploymentId, tracked: _Tracked, now: float) -> Observation:
        """Sample demand (in flight + queued) now and keep only the stable window (now - window, now]."""
        demand, last_request = self._demand(deployment)
        tracked.samples.append((now, float(demand)))
        while tracked.samples and tracked.samples[0][0] <= now - tracked.spec.window_stable:
            tracked.samples.popleft()
        stats = self._runtime.stats(deployment)
        current = stats.ready + stats.starting
        return Observation(now, current, tuple(tracked.samples), last_request, stats.last_start_at)

    async def _record_once(self, deployment: DeploymentId, tracked: _Tracked, current: int, decision: Decision) -> None:
        """Record a decision that changes something, once. A runtime that does not act (a pool
        held after a crash, a restart back-off) sees the same decision every tick; that is
        still one event, not one a second."""
        if decision.desired != tracked.recorded:
            await self._record(deployment, current, decision.desired, decision.reason)
            tracked.recorded = decision.desired

    def _scale(self, deployment: DeploymentId, count: int, reason: str) -> None:
        """Scale in the background: a start that waits for readiness must not hold up the other
        deployments' ticks. One scaling at a time per deployment."""

        async def scale() -> None:
            try:
                await self._runtime.scale_to(deployment, count, reason)
            except Exception as exc:  # noqa: BLE001 - a failed scale is logged and retried on a later tick
                log.warning("scaling %s to %d failed: %s", deployment, count, exc)
            finally:
                self._scaling.pop(deployment, None)

        self._scaling[deployment] = asyncio.get_running_loop().create_task(scale())
