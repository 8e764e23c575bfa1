"""The autoscaler's decision on traces: pure, with a fake clock."""

from __future__ import annotations

import itertools

from roost.autoscale import Decision, Observation, ScaleSpec, ScaleState, decide

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
