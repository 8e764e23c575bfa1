"""The autoscaler's decision on traces, and the loop's sampling and event recording: a fake
clock (`tick(now)`), fake edge counters and a fake runtime, no sleeps."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from typing import cast

import pytest

from roost.autoscale import Autoscaler, Decision, Observation, ScaleSpec, ScaleState, averages, decide, idle_since
from roost.model import DeploymentId, Quota
from roost.quotas import Cap, Holding
from roost.runtime.protocol import DeploymentStats, Runtime

SERVICE = ScaleSpec(
    min=1, max=20, target=10, idle_timeout=300, function=False, window_stable=60, window_panic=6, scale_down_delay=30
)
FUNCTION = ScaleSpec(
    min=0, max=20, target=10, idle_timeout=60, function=True, window_stable=60, window_panic=6, scale_down_delay=30
)


def replay(spec: ScaleSpec, demand: list[float], start: int = 1) -> list[Decision]:
    """Feed one demand sample a second; the instance count follows each decision at once."""
    state, current, samples, decisions = ScaleState(), start, [], []
    last_request = None
    for second, value in enumerate(demand):
        now = 1000.0 + second
        samples.append((now, value))
        if value > 0:
            last_request = now
        window = tuple(s for s in samples if s[0] >= now - spec.window_stable)
        decision, state = decide(spec, state, Observation(now, current, window, last_request))
        decisions.append(decision)
        current = decision.desired
    return decisions


def counts(decisions: list[Decision]) -> list[int]:
    return [d.desired for d in decisions]


def test_steady_load_settles_on_ceil_of_demand_over_target() -> None:
    result = counts(replay(SERVICE, [45.0] * 120))
    assert result[-1] == 5
    assert max(result) <= 5


def test_ramp_grows_step_by_step() -> None:
    ramp = [float(i) for i in range(0, 100)] + [100.0] * 80
    result = counts(replay(SERVICE, ramp))
    assert result == sorted(result)  # never shrinks while demand grows
    assert result[-1] == 10


def test_spike_panics_up_at_once_and_does_not_scale_down_while_panicking() -> None:
    trace = [5.0] * 30 + [200.0] * 10 + [5.0] * 20
    decisions = replay(SERVICE, trace)
    assert counts(decisions)[29] == 1
    assert counts(decisions)[30] >= 4  # the first second of the spike already panics
    assert decisions[30].reason.startswith("panic")
    assert counts(decisions)[36] == 20  # the panic window is full of the spike: all the way up
    peak = max(counts(decisions))
    assert peak == 20  # capped by max
    assert counts(decisions)[-1] == peak  # still panicking: no scale-down yet


def test_drop_scales_down_only_after_the_delay() -> None:
    trace = [80.0] * 70 + [10.0] * 150
    result = counts(replay(SERVICE, trace))
    assert result[69] == 8
    first_lower = next(i for i, n in enumerate(result) if i > 69 and n < 8)
    assert first_lower - 70 >= 30
    assert result[-1] == 1


def test_the_delay_counts_from_when_recent_demand_fell_not_from_when_the_long_average_did() -> None:
    """A burst the activator scaled for (1 -> 3 instances) while the stable window still holds the
    calm before it: the stable average alone wants fewer at once, yet the burst is still on."""
    spec = ScaleSpec(
        min=1, max=3, target=2, idle_timeout=300, function=False, window_stable=10, window_panic=1, scale_down_delay=5
    )
    trace = [1.0] * 9 + [8.0] * 3 + [1.0] * 30  # the burst is on for seconds 9-11
    state, current, samples, lowered_at = ScaleState(), 1, [], None
    for second, demand in enumerate(trace):
        if second == 9:
            current = 3  # the activator started two for the burst's waiting requests
        samples.append((float(second), demand))
        window = tuple(s for s in samples if s[0] > second - spec.window_stable)
        decision, state = decide(spec, state, Observation(float(second), current, window, float(second)))
        if decision.desired < current and lowered_at is None:
            lowered_at = second
            assert decision.reason.startswith("demand fell"), decision
        current = decision.desired
    assert lowered_at is not None, "never scaled down"
    assert lowered_at >= 12 + spec.scale_down_delay, f"scaled down at {lowered_at}s, the burst ended at 12s"
    assert current == 1


def test_flapping_demand_does_not_flap_instances() -> None:
    trace = ([40.0] * 5 + [20.0] * 5) * 20
    result = counts(replay(SERVICE, trace))
    changes = sum(1 for a, b in itertools.pairwise(result) if a != b)
    assert changes <= 6
    assert 3 <= result[-1] <= 4


def test_function_goes_to_zero_after_idle_timeout_and_service_never_below_min() -> None:
    trace = [5.0] * 10 + [0.0] * 200
    function = counts(replay(FUNCTION, trace, start=0))
    assert function[5] == 1
    assert function[10 + 30] == 1  # idle for less than idle_timeout: kept warm
    assert function[-1] == 0
    service = counts(replay(SERVICE, trace))
    assert min(service) == 1


def test_first_request_of_a_sleeping_function_starts_one() -> None:
    decisions = replay(FUNCTION, [0.0] * 5 + [1.0], start=0)
    assert counts(decisions)[-1] == 1


def test_never_beyond_max() -> None:
    assert max(counts(replay(SERVICE, [10_000.0] * 30))) == SERVICE.max


def test_past_demand_starts_nothing_once_the_load_is_gone() -> None:
    """After a burst, the stable window still remembers demand; if the runtime put the function
    to sleep meanwhile, nothing may be started for requests that are no longer there."""
    spec = ScaleSpec(
        min=0, max=5, target=2, idle_timeout=2, function=True, window_stable=4, window_panic=1, scale_down_delay=2
    )
    samples = ((0.0, 6.0), (1.0, 6.0), (2.0, 0.0), (3.0, 0.0))
    asleep = Observation(now=3.0, current=0, samples=samples, last_request_at=1.5)
    decision, _ = decide(spec, ScaleState(panic_until=10.0), asleep)
    assert decision.desired == 0
    decision, _ = decide(spec, ScaleState(), asleep)
    assert decision.desired == 0
    service = ScaleSpec(min=1, max=5, target=2, idle_timeout=2, function=False, window_stable=4, window_panic=1)
    decision, _ = decide(service, ScaleState(), asleep)
    assert decision.desired == 1


DEP = DeploymentId("d-1")


class FakeRuntime:
    """Reports `count` ready instances; `scale_to` is remembered and, unless `acts`, ignored, as
    LocalRuntime does for a pool held after a crash (--no-auto-restart) or backing off."""

    def __init__(self, count: int = 0, acts: bool = False, last_start_at: float | None = None) -> None:
        self.count = count
        self.acts = acts
        self.last_start_at = last_start_at
        self.calls: list[int] = []

    def stats(self, deployment: DeploymentId) -> DeploymentStats:
        started = self.last_start_at if self.count else None
        return DeploymentStats(
            deployment,
            ready=self.count,
            starting=0,
            draining=0,
            in_flight=0,
            capacity=0,
            last_request_at=None,
            last_start_at=started,
        )

    async def scale_to(self, deployment: DeploymentId, count: int, reason: str) -> None:
        self.calls.append(count)
        if self.acts:
            self.count = count


class Counters:
    """The edge's counters as the autoscaler reads them: demand now, and the last request's time."""

    def __init__(self) -> None:
        self.demand = 0
        self.last_request_at: float | None = None

    def __call__(self, deployment: DeploymentId) -> tuple[int, float | None]:
        return self.demand, self.last_request_at


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[int, int, str]] = []

    async def __call__(self, deployment: DeploymentId, current: int, desired: int, reason: str) -> None:
        self.recorded.append((current, desired, reason))


def autoscaler(spec: ScaleSpec, runtime: FakeRuntime, counters: Counters, events: Events) -> Autoscaler:
    scaler = Autoscaler(cast(Runtime, runtime), counters, events)
    scaler.set_specs({DEP: spec})
    return scaler


async def tick(scaler: Autoscaler, now: float) -> None:
    """One tick, then let its background scale_to run to the end (the fake never awaits)."""
    await scaler.tick(now)
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_runtime_that_does_not_act_gets_one_event_not_one_a_tick() -> None:
    runtime, counters, events = FakeRuntime(count=0), Counters(), Events()
    scaler = autoscaler(SERVICE, runtime, counters, events)
    for second in range(300):
        await tick(scaler, 1000.0 + second)
    assert len(runtime.calls) == 300  # the decision is retried every tick...
    assert events.recorded == [(0, 1, "keeping the minimum")]  # ...and recorded once


async def test_a_new_decision_or_a_new_episode_is_recorded_again() -> None:
    runtime, counters, events = FakeRuntime(count=0), Counters(), Events()
    scaler = autoscaler(SERVICE, runtime, counters, events)
    for second in range(10):
        await tick(scaler, 1000.0 + second)
    runtime.count = 1  # the back-off ran out and the runtime restarted it: converged
    for second in range(10, 20):
        await tick(scaler, 1000.0 + second)
    runtime.count = 0  # it crashed again
    for second in range(20, 30):
        await tick(scaler, 1000.0 + second)
    assert [(a, b) for a, b, _ in events.recorded] == [(0, 1), (0, 1)]
    counters.demand = 40  # new decisions while the runtime still does nothing: one event for each
    for second in range(30, 40):
        await tick(scaler, 1000.0 + second)
    assert [b for _, b, _ in events.recorded] == [1, 1, 2, 3, 4]  # the panic average climbs as its window fills


async def test_a_runtime_that_acts_gets_one_event_per_change() -> None:
    runtime, counters, events = FakeRuntime(count=1, acts=True), Counters(), Events()
    scaler = autoscaler(SERVICE, runtime, counters, events)
    counters.demand = 45
    for second in range(120):
        await tick(scaler, 1000.0 + second)
    assert runtime.count == 5
    assert [b for _, b, _ in events.recorded] == [5]


async def test_samples_older_than_the_stable_window_are_dropped() -> None:
    counters = Counters()
    scaler = autoscaler(SERVICE, FakeRuntime(count=1), counters, Events())
    for second in range(100):
        counters.demand = second
        await tick(scaler, float(second))
    obs = scaler.last_observation(DEP)
    assert obs is not None
    assert obs.now == 99.0
    assert [at for at, _ in obs.samples] == [float(s) for s in range(40, 100)]  # (39, 99]: 60 one-second samples
    assert [demand for _, demand in obs.samples] == [float(s) for s in range(40, 100)]


async def test_the_window_is_time_not_a_count_of_ticks() -> None:
    """A late tick (a busy loop) drops every sample that fell out of the window meanwhile."""
    spec = ScaleSpec(min=1, max=20, target=10, idle_timeout=300, function=False, window_stable=5, window_panic=1)
    counters = Counters()
    scaler = autoscaler(spec, FakeRuntime(count=1), counters, Events())
    for at in (0.0, 1.0, 2.0, 3.0, 7.5):
        counters.demand = int(at * 10)
        await tick(scaler, at)
    obs = scaler.last_observation(DEP)
    assert obs is not None
    assert obs.samples == ((3.0, 30.0), (7.5, 75.0))


async def test_window_averages_of_sampled_demand() -> None:
    counters = Counters()
    scaler = autoscaler(SERVICE, FakeRuntime(count=1), counters, Events())
    for second in range(60):
        counters.demand = 10 if second < 54 else 40  # the last 6 s (the panic window) at 40
        await tick(scaler, float(second))
    obs = scaler.last_observation(DEP)
    assert obs is not None
    stable, panic = averages(SERVICE, obs)
    assert stable == pytest.approx((54 * 10 + 6 * 40) / 60)  # 13.0
    assert panic == pytest.approx(40.0)
    counters.demand = 0
    for second in range(60, 90):
        await tick(scaler, float(second))
    obs = scaler.last_observation(DEP)
    assert obs is not None
    stable, panic = averages(SERVICE, obs)
    assert stable == pytest.approx((24 * 10 + 6 * 40) / 60)  # (29, 89]: 24 at 10, 6 at 40, 30 at 0
    assert panic == 0.0


def test_no_samples_average_to_zero() -> None:
    assert averages(SERVICE, Observation(now=5.0, current=1, samples=(), last_request_at=None)) == (0.0, 0.0)


def test_a_function_started_seconds_ago_without_a_request_is_not_idle() -> None:
    """A push or promote starts an instance before any request: it is seconds old, not idle for
    `idle_timeout`, until `idle_timeout` has passed since it started."""
    fresh = Observation(now=1005.0, current=1, samples=((1005.0, 0.0),), last_request_at=None, last_start_at=1000.0)
    decision, _ = decide(FUNCTION, ScaleState(), fresh)
    assert decision.desired == 1, decision
    old = replace(fresh, now=1000.0 + FUNCTION.idle_timeout + 1, samples=((1061.0, 0.0),))
    decision, _ = decide(FUNCTION, ScaleState(), old)
    assert decision == Decision(0, f"no request for {FUNCTION.idle_timeout:g}s")


def test_idleness_counts_from_the_later_of_the_last_request_and_the_newest_start() -> None:
    restarted = Observation(now=1100.0, current=1, samples=(), last_request_at=1000.0, last_start_at=1090.0)
    assert idle_since(restarted) == 1090.0
    assert decide(FUNCTION, ScaleState(), restarted)[0].desired == 1  # 100 s after the request, 10 s after the start
    asked = replace(restarted, last_request_at=1095.0, last_start_at=1000.0)
    assert idle_since(asked) == 1095.0
    assert idle_since(replace(asked, last_request_at=None, last_start_at=None)) is None


async def test_the_loop_observes_the_newest_start_and_keeps_a_fresh_function() -> None:
    runtime, counters, events = FakeRuntime(count=1, acts=True, last_start_at=1000.0), Counters(), Events()
    scaler = autoscaler(FUNCTION, runtime, counters, events)
    for second in range(FUNCTION.idle_timeout - 1):
        await tick(scaler, 1000.0 + second)
    assert runtime.calls == [] and runtime.count == 1, events.recorded
    for second in range(FUNCTION.idle_timeout - 1, FUNCTION.idle_timeout + 2):
        await tick(scaler, 1000.0 + second)
    assert runtime.count == 0
    assert events.recorded == [(1, 0, f"no request for {FUNCTION.idle_timeout:g}s")]


# -- quotas ---------------------------------------------------------------------------------------------------------

MB = 1024 * 1024
SHOP = Quota("shop-*", instances=4, memory=None)


def capped_obs(now: float, current: int, demand: float, cap: Cap | None) -> Observation:
    return Observation(now, current, ((now - 1, demand), (now, demand)), now, cap=cap)


def test_a_cap_holds_the_decision_at_what_the_quota_leaves_and_says_so() -> None:
    cap = Cap(SHOP, instances=4, memory_each=128 * MB, others=Holding())
    decision, _ = decide(SERVICE, ScaleState(), capped_obs(1000.0, 2, 60.0, cap))
    assert (decision.desired, decision.wanted, decision.cap) == (4, 6, cap)
    assert decision.reason == 'quota "shop-*" reached: 4 of 4 instances (wanted 6)'


def test_a_cap_counts_what_the_rest_of_the_group_holds() -> None:
    cap = Cap(SHOP, instances=1, memory_each=128 * MB, others=Holding(3, 3 * 128 * MB))
    decision, _ = decide(SERVICE, ScaleState(), capped_obs(1000.0, 1, 60.0, cap))
    assert decision.desired == 1
    assert decision.reason == 'quota "shop-*" reached: 4 of 4 instances (wanted 9)'


def test_a_memory_cap_says_memory() -> None:
    quota = Quota("shop-a", memory=512 * MB)
    cap = Cap(quota, instances=2, memory_each=256 * MB, others=Holding())
    decision, _ = decide(SERVICE, ScaleState(), capped_obs(1000.0, 2, 50.0, cap))
    assert decision.desired == 2
    assert decision.reason == 'quota "shop-a" reached: 512M of 512M memory (wanted 1280M)'


def test_demand_within_the_cap_is_not_capped() -> None:
    cap = Cap(SHOP, instances=4, memory_each=128 * MB, others=Holding())
    decision, _ = decide(SERVICE, ScaleState(), capped_obs(1000.0, 2, 30.0, cap))
    assert (decision.desired, decision.cap, decision.wanted) == (3, None, None)


def test_a_lowered_quota_scales_down_to_it() -> None:
    cap = Cap(SHOP, instances=2, memory_each=128 * MB, others=Holding())
    decision, _ = decide(SERVICE, ScaleState(), capped_obs(1000.0, 5, 50.0, cap))
    assert decision.desired == 2


class QuotaEvents:
    def __init__(self) -> None:
        self.recorded: list[tuple[DeploymentId, str]] = []

    async def __call__(self, deployment: DeploymentId, decision: Decision) -> None:
        self.recorded.append((deployment, decision.reason))


async def test_the_quota_event_is_recorded_once_per_episode() -> None:
    runtime, counters, events, reached = FakeRuntime(count=1, acts=True), Counters(), Events(), QuotaEvents()
    scaler = Autoscaler(cast(Runtime, runtime), counters, events, record_quota=reached)
    scaler.set_specs({DEP: replace(SERVICE, app="shop-a", memory=128 * MB)})
    scaler.set_quotas([SHOP])
    counters.demand = 60
    for second in range(60):
        await tick(scaler, 1000.0 + second)
    assert runtime.count == 4
    assert reached.recorded == [(DEP, 'quota "shop-*" reached: 4 of 4 instances (wanted 6)')]
    counters.demand = 10  # demand fits again: the episode ends...
    for second in range(60, 200):
        await tick(scaler, 1000.0 + second)
    counters.demand = 80  # ...and a new one is recorded again
    for second in range(200, 260):
        await tick(scaler, 1000.0 + second)
    assert len(reached.recorded) == 2
    assert runtime.count == 4


async def test_deployments_of_one_group_share_its_cap() -> None:
    a, b = DeploymentId("d-a"), DeploymentId("d-b")
    counters, events = Counters(), Events()
    counts_of = {a: 1, b: 1}

    class TwoRuntime(FakeRuntime):
        def stats(self, deployment: DeploymentId) -> DeploymentStats:
            return replace(super().stats(deployment), ready=counts_of[deployment])

        async def scale_to(self, deployment: DeploymentId, count: int, reason: str) -> None:
            counts_of[deployment] = count

    scaler = Autoscaler(cast(Runtime, TwoRuntime()), counters, events)
    scaler.set_specs({a: replace(SERVICE, app="shop-a"), b: replace(SERVICE, app="shop-b")})
    scaler.set_quotas([SHOP])
    counters.demand = 50  # each wants 5
    for second in range(30):
        await tick(scaler, 1000.0 + second)
    assert sum(counts_of.values()) == 4  # not 5 + 5
    assert min(counts_of.values()) >= 1
