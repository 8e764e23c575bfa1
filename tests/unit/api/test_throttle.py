"""The login throttle's decisions, with the clock passed in."""

from roost.api.throttle import Admission, Sources, Throttle, ThrottlePolicy

POLICY = ThrottlePolicy()
A_ADMIN = Sources("10.0.0.1", "admin")


def fail(throttle: Throttle, sources: Sources, now: float, times: int = 1) -> float:
    """`times` admitted attempts that fail; the last settle's retry_after."""
    retry_after = 0.0
    for _ in range(times):
        assert throttle.reserve(sources, now).admission is Admission.ADMITTED
        retry_after = throttle.settle(sources, False, now)
    return retry_after


def test_free_failures_then_growing_delay_then_lockout() -> None:
    throttle = Throttle()
    delays = []
    for _ in range(POLICY.lockout_after):
        verdict = throttle.reserve(A_ADMIN, now=100.0)
        assert verdict.admission is Admission.ADMITTED
        delays.append(verdict.delay)
        retry_after = throttle.settle(A_ADMIN, False, now=100.0)
    assert delays[: POLICY.free_failures] == [0.0] * POLICY.free_failures
    assert delays[POLICY.free_failures :] == sorted(delays[POLICY.free_failures :])
    assert 0 < delays[POLICY.free_failures] < delays[-1] <= POLICY.delay_max
    assert retry_after == POLICY.lockout_seconds
    assert throttle.reserve(A_ADMIN, now=101.0).locked


def test_a_locked_source_is_still_checked_one_attempt_at_a_time() -> None:
    """A valid password from a locked address must get in: checked, after delay_locked."""
    throttle = Throttle()
    fail(throttle, A_ADMIN, 0.0, POLICY.lockout_after)
    first = throttle.reserve(A_ADMIN, now=1.0)
    assert first.admission is Admission.ADMITTED
    assert first.delay == POLICY.delay_locked
    assert first.locked
    second = throttle.reserve(A_ADMIN, now=1.0)
    assert second.admission is Admission.REFUSED  # never waits: the lockout answers at once
    assert second.retry_after > 0
    assert throttle.settle(A_ADMIN, True, now=7.0) == POLICY.lockout_seconds - 7.0
    assert throttle.reserve(A_ADMIN, now=7.0).admission is Admission.ADMITTED


def test_after_the_lockout_ends_a_source_is_admitted_at_once() -> None:
    """Defect 1: 8 failures, lockout over, window not: the old throttle said 'busy' with nothing
    in flight, and the login waited forever."""
    throttle = Throttle()
    fail(throttle, A_ADMIN, 0.0, POLICY.lockout_after)
    assert POLICY.lockout_seconds + 1 < POLICY.window
    verdict = throttle.reserve(A_ADMIN, now=POLICY.lockout_seconds + 1)
    assert verdict.admission is Admission.ADMITTED
    assert verdict.delay == 0.0  # the failures were paid for by the lockout


def test_wait_is_said_only_while_an_attempt_of_the_source_is_in_flight() -> None:
    """Whatever the history, WAIT implies something pending that will settle and wake the waiter."""
    throttle = Throttle(ThrottlePolicy(lockout_seconds=10.0, window=100.0))
    sources = [Sources(f"10.0.0.{i % 3}", f"user{i % 2}") for i in range(6)]
    in_flight: list[Sources] = []
    for step in range(400):
        now = step * 0.5
        source = sources[step * 7 % len(sources)]
        verdict = throttle.reserve(source, now)
        if verdict.admission is Admission.WAIT:
            assert any(s.address == source.address or s.name == source.name for s in in_flight)
        elif verdict.admission is Admission.ADMITTED:
            in_flight.append(source)
        if in_flight and step % 3 == 0:
            throttle.settle(in_flight.pop(0), step % 5 == 0, now)


def test_a_valid_login_forgets_no_failure() -> None:
    """Else an attacker sharing the address would get a fresh budget at each of the owner's logins."""
    throttle = Throttle()
    fail(throttle, A_ADMIN, 0.0, POLICY.free_failures + 2)
    assert throttle.reserve(A_ADMIN, 0.0).admission is Admission.ADMITTED
    throttle.settle(A_ADMIN, True, 0.0)
    assert throttle.reserve(A_ADMIN, 0.0).delay > 0


def test_failures_count_per_name_across_addresses() -> None:
    throttle = Throttle()
    for index in range(POLICY.lockout_after):
        fail(throttle, Sources(f"10.0.1.{index}", "admin"), 0.0)
    verdict = throttle.reserve(Sources("10.9.9.9", "admin"), 1.0)
    assert verdict.delay == POLICY.delay_locked  # a fresh address guessing admin is slowed
    assert throttle.reserve(Sources("10.9.9.9", "other"), 1.0).delay == 0.0


def test_one_source_does_not_lock_out_another() -> None:
    """An app guessing `admin` from the operator's address: the operator's own name is slowed by
    the address (5s at most) but still checked; another name elsewhere is untouched."""
    throttle = Throttle()
    fail(throttle, Sources("127.0.0.1", "admin"), 0.0, POLICY.lockout_after)
    operator = throttle.reserve(Sources("127.0.0.1", "operator"), 1.0)
    assert operator.admission is Admission.ADMITTED
    assert operator.delay == POLICY.delay_locked
    assert throttle.settle(Sources("127.0.0.1", "operator"), True, 6.0) > 0
    elsewhere = throttle.reserve(Sources("10.0.0.2", "operator"), 6.0)
    assert (elsewhere.admission, elsewhere.delay) == (Admission.ADMITTED, 0.0)


def test_old_failures_expire() -> None:
    throttle = Throttle()
    fail(throttle, A_ADMIN, 0.0, POLICY.free_failures + 2)
    assert throttle.reserve(A_ADMIN, now=POLICY.window + 1).delay == 0.0


def test_a_failure_while_locked_starts_the_lockout_again() -> None:
    throttle = Throttle()
    fail(throttle, A_ADMIN, 0.0, POLICY.lockout_after)
    assert fail(throttle, A_ADMIN, 100.0) == POLICY.lockout_seconds
    assert throttle.reserve(A_ADMIN, POLICY.lockout_seconds + 1).delay == POLICY.delay_locked


def test_table_is_bounded_and_keeps_lockouts() -> None:
    throttle = Throttle(limit_entries=3)
    fail(throttle, A_ADMIN, 0.0, POLICY.lockout_after)
    for index in range(10):
        fail(throttle, Sources("10.0.0.1", f"name{index}"), 1.0)
    assert len(throttle.names.records) == 3
    assert throttle.names.current("admin", 2.0) is not None  # locked: not what a flood of names evicts


def test_attempts_in_flight_share_the_budget() -> None:
    """Parallel attempts are counted when admitted: the ninth waits even though none has failed yet."""
    throttle = Throttle()
    admitted = [throttle.reserve(A_ADMIN, now=0.0) for _ in range(POLICY.lockout_after)]
    assert {v.admission for v in admitted} == {Admission.ADMITTED}
    assert [v.delay for v in admitted[: POLICY.free_failures]] == [0.0] * POLICY.free_failures
    assert 0 < admitted[POLICY.free_failures].delay < admitted[-1].delay <= POLICY.delay_max
    assert throttle.reserve(A_ADMIN, now=0.0).admission is Admission.WAIT
    assert throttle.reserve(Sources("10.0.0.2", "bob"), now=0.0).admission is Admission.ADMITTED
    for _ in range(POLICY.lockout_after):
        throttle.settle(A_ADMIN, False, now=1.0)
    assert throttle.reserve(A_ADMIN, now=2.0).delay == POLICY.delay_locked


def test_a_settled_attempt_frees_the_budget() -> None:
    throttle = Throttle()
    for _ in range(POLICY.lockout_after):
        throttle.reserve(A_ADMIN, now=0.0)
    throttle.settle(A_ADMIN, True, now=0.0)
    assert throttle.reserve(A_ADMIN, now=0.0).admission is Admission.ADMITTED


def test_pending_attempts_survive_the_window_rolling_over() -> None:
    throttle = Throttle()
    for _ in range(POLICY.lockout_after):
        throttle.reserve(A_ADMIN, now=0.0)
    assert throttle.reserve(A_ADMIN, now=POLICY.window + 1).admission is Admission.WAIT
