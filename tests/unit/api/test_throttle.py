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
