from roost.api.throttle import DELAY_MAX, FREE_FAILURES, LOCKOUT_AFTER, LOCKOUT_SECONDS, WINDOW, Throttle


def test_free_failures_then_growing_delay_then_lockout() -> None:
    throttle = Throttle()
    delays = []
    for _ in range(LOCKOUT_AFTER):
        verdict = throttle.check("a", now=100.0)
        assert not verdict.locked
        delays.append(verdict.delay)
        throttle.failed("a", now=100.0)
    assert delays[:FREE_FAILURES] == [0.0] * FREE_FAILURES
    assert delays[FREE_FAILURES:] == sorted(delays[FREE_FAILURES:])
    assert 0 < delays[FREE_FAILURES] < delays[-1] <= DELAY_MAX
    locked = throttle.check("a", now=101.0)
    assert locked.locked
    assert locked.retry_after == LOCKOUT_SECONDS - 1.0
    assert not throttle.check("b", now=101.0).locked
    assert not throttle.check("a", now=100.0 + LOCKOUT_SECONDS + WINDOW).locked


def test_success_forgets_failures() -> None:
    throttle = Throttle()
    for _ in range(FREE_FAILURES + 2):
        throttle.failed("a", now=0.0)
    throttle.succeeded("a")
    assert throttle.check("a", now=0.0).delay == 0.0


def test_old_failures_expire() -> None:
    throttle = Throttle()
    for _ in range(FREE_FAILURES + 2):
        throttle.failed("a", now=0.0)
    assert throttle.check("a", now=WINDOW + 1).delay == 0.0


def test_table_is_bounded() -> None:
    throttle = Throttle(limit_entries=3)
    for index in range(10):
        throttle.failed(f"addr{index}", now=0.0)
    assert len(throttle._records) == 3


def test_attempts_in_flight_share_the_budget() -> None:
    """Parallel attempts are counted when admitted: the ninth waits even though none has failed yet."""
    throttle = Throttle()
    admitted = [throttle.reserve("a", now=0.0) for _ in range(LOCKOUT_AFTER)]
    assert [v.delay for v in admitted[:FREE_FAILURES]] == [0.0] * FREE_FAILURES
    assert 0 < admitted[FREE_FAILURES].delay < admitted[-1].delay <= DELAY_MAX
    extra = throttle.reserve("a", now=0.0)
    assert extra.busy
    assert not extra.locked
    assert not throttle.reserve("b", now=0.0).busy
    for _ in range(LOCKOUT_AFTER):
        throttle.failed("a", now=1.0)
    assert throttle.reserve("a", now=2.0).locked


def test_a_success_in_flight_frees_the_budget() -> None:
    throttle = Throttle()
    for _ in range(LOCKOUT_AFTER):
        throttle.reserve("a", now=0.0)
    throttle.succeeded("a")
    verdict = throttle.reserve("a", now=0.0)
    assert not verdict.busy
    assert verdict.delay == 0.0


def test_pending_attempts_survive_the_window_rolling_over() -> None:
    throttle = Throttle()
    for _ in range(LOCKOUT_AFTER):
        throttle.reserve("a", now=0.0)
    assert throttle.reserve("a", now=WINDOW + 1).busy
