"""The back-off policy and the capacity decisions are pure: no clock, no process."""

from roost.model import AppConfig, Mode, ScaleConfig
from roost.runtime.backoff import Backoff, is_crash_looping
from roost.runtime.capacity import clamp_count, floor_count, pick_least_loaded, pick_surplus, starts_needed


def test_delay_doubles_from_first_to_the_maximum() -> None:
    policy = Backoff(first=1.0, maximum=300.0, reset=600.0)
    assert [policy.delay(streak) for streak in range(1, 11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert policy.delay(0) == 0
    assert policy.delay(10_000) == 300


def test_a_healthy_spell_starts_the_streak_afresh() -> None:
    policy = Backoff(first=1.0, maximum=300.0, reset=600.0)
    assert policy.next_streak(0, healthy_seconds=0) == 1
    assert policy.next_streak(5, healthy_seconds=599.9) == 6
    assert policy.next_streak(5, healthy_seconds=600) == 1


def test_crash_looping_after_three_crashes_in_a_row() -> None:
    assert not is_crash_looping(2)
    assert is_crash_looping(3)


def test_one_start_covers_many_waiters() -> None:
    assert starts_needed(slots=1, free=0, starting=0, live=0, concurrency=10, maximum=5) == 1
    assert starts_needed(slots=10, free=0, starting=1, live=1, concurrency=10, maximum=5) == 0
    assert starts_needed(slots=11, free=0, starting=1, live=1, concurrency=10, maximum=5) == 1
    assert starts_needed(slots=3, free=3, starting=0, live=1, concurrency=10, maximum=5) == 0


def test_never_beyond_the_maximum() -> None:
    assert starts_needed(slots=100, free=0, starting=0, live=0, concurrency=10, maximum=3) == 3
    assert starts_needed(slots=100, free=0, starting=0, live=3, concurrency=10, maximum=3) == 0
    assert starts_needed(slots=5, free=0, starting=0, live=0, concurrency=0, maximum=10) == 5


def test_the_least_loaded_instance_with_room_wins() -> None:
    assert pick_least_loaded([("a", 3), ("b", 1), ("c", 2)], concurrency=5) == "b"
    assert pick_least_loaded([("a", 5), ("b", 5)], concurrency=5) is None
    assert pick_least_loaded([], concurrency=5) is None
    assert pick_least_loaded([("a", 0), ("b", 0)], concurrency=1) == "a"


def test_scaling_down_drains_starting_then_idle_then_newest() -> None:
    candidates = [
        ("old-busy", True, 3, 1.0),
        ("new-idle", True, 0, 9.0),
        ("old-idle", True, 0, 2.0),
        ("starting", False, 0, 5.0),
    ]
    assert pick_surplus(candidates, 1) == ["starting"]
    assert pick_surplus(candidates, 3) == ["starting", "new-idle", "old-idle"]
    assert pick_surplus(candidates, 0) == []


def test_a_service_keeps_at_least_one_instance() -> None:
    service = AppConfig(mode=Mode.SERVICE, scale=ScaleConfig(min=0, max=4))
    function = AppConfig(mode=Mode.FUNCTION, scale=ScaleConfig(min=0, max=4))
    assert floor_count(service) == 1
    assert floor_count(function) == 0
    assert clamp_count(service, 0) == 1
    assert clamp_count(function, 9) == 4
    assert clamp_count(AppConfig(mode=Mode.FUNCTION, scale=ScaleConfig(min=2, max=1)), 0) == 2
