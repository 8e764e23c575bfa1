"""What `roost push` says after a failed deployment: production as it was, or nothing yet."""

from __future__ import annotations

from roost.cli.push import failure_hint


def test_a_failed_push_over_a_working_one_names_what_still_serves() -> None:
    listed = [
        {"id": "newfail1", "status": "failed", "weight": 0},
        {"id": "ab12cd34", "status": "ready", "weight": 100},
    ]
    assert failure_hint("hello", listed).endswith("production still serves the previous deployment (ab12cd34)")


def test_a_failed_first_push_does_not_promise_a_previous_deployment() -> None:
    hint = failure_hint("hello", [{"id": "newfail1", "status": "failed", "weight": 0}])
    assert "previous" not in hint
    assert "'hello' has no working deployment yet (`roost logs hello` has details)" in hint


def test_ready_but_unpromoted_deployments_do_not_count_as_production() -> None:
    listed = [{"id": "newfail1", "status": "failed", "weight": 0}, {"id": "ab12cd34", "status": "ready", "weight": 0}]
    hint = failure_hint("hello", listed)
    assert "previous" not in hint
    assert "nothing takes production traffic (`roost promote hello ab12cd34`)" in hint
