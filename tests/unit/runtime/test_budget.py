"""The host memory budget's pure planner: what fits, and whom to stop for it."""

from __future__ import annotations

from roost.runtime.budget import Candidate, Plan, plan_room

MB = 1 << 20


def test_no_budget_always_fits() -> None:
    assert plan_room(0, 10_000 * MB, 128 * MB, []) == Plan(True)


def test_fits_without_stopping_anything() -> None:
    assert plan_room(512 * MB, 256 * MB, 128 * MB, [Candidate("a", 128 * MB, 1.0)]) == Plan(True)


def test_stops_the_least_recently_used_first_and_no_more_than_needed() -> None:
    candidates = [
        Candidate("recent", 128 * MB, 50.0),
        Candidate("oldest", 128 * MB, 10.0),
        Candidate("mid", 128 * MB, 30.0),
    ]
    assert plan_room(512 * MB, 512 * MB, 128 * MB, candidates) == Plan(True, ("oldest",))
    assert plan_room(512 * MB, 512 * MB, 256 * MB, candidates) == Plan(True, ("oldest", "mid"))


def test_refuses_when_even_stopping_every_candidate_is_not_enough() -> None:
    assert plan_room(256 * MB, 256 * MB, 512 * MB, [Candidate("a", 128 * MB, 1.0)]) == Plan(False)
