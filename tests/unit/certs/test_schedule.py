"""The renewal schedule with a made-up clock: 2/3 of the lifetime, back-off after failures, never a tight loop."""

from __future__ import annotations

from roost.certs import RenewalPolicy, after_failure, backoff, due, due_at, next_wake, renew_at, state_at
from roost.model import AppName, CertSource, CertState, DomainCert

DAY = 86400.0


def issued(host: str, not_before: float, days: float = 90) -> DomainCert:
    return DomainCert(
        host, AppName("shop"), CertSource.ACME, CertState.VALID, not_before, not_before + days * DAY, not_before
    )


def test_a_certificate_renews_at_two_thirds_of_its_lifetime() -> None:
    assert renew_at(0.0, 90 * DAY) == 60 * DAY
    cert = issued("a.test", 1000.0)
    assert due([cert], 1000.0 + 60 * DAY - 1) == []
    assert due([cert], 1000.0 + 60 * DAY) == [cert]


def test_a_pending_certificate_is_due_at_once_and_a_manual_one_never() -> None:
    pending = DomainCert("p.test", AppName("shop"), CertSource.ACME, CertState.PENDING)
    manual = DomainCert("m.test", AppName("shop"), CertSource.MANUAL, CertState.VALID, 0.0, 1.0, 0.0)
    plain = DomainCert("h.test", AppName("shop"))
    assert due([pending, manual, plain], 5.0) == [pending]
    assert due_at(manual) is None and due_at(plain) is None


def test_failures_back_off_exponentially_up_to_a_ceiling() -> None:
    waits = [backoff(n) for n in range(1, 9)]
    assert waits[:3] == [60.0, 240.0, 960.0]
    assert waits == sorted(waits)
    assert waits[-1] == 6 * 3600.0


def test_a_failed_renewal_waits_for_its_back_off_not_for_the_renewal_time() -> None:
    cert = issued("a.test", 0.0)
    now = 61 * DAY  # past the renewal time
    failures, retry = after_failure(cert, now)
    failing = DomainCert(
        cert.host, cert.app, cert.source, CertState.FAILING, cert.not_before, cert.not_after, cert.issued_at,
        failures, "connection refused", retry,
    )  # fmt: skip
    assert (failures, retry) == (1, now + 60.0)
    assert due([failing], now + 59.0) == []  # no tight loop: the clock must reach the retry
    assert due([failing], now + 60.0) == [failing]
    assert after_failure(failing, now + 60.0) == (2, now + 60.0 + 240.0)


def test_the_loop_sleeps_until_the_next_due_certificate_within_bounds() -> None:
    policy = RenewalPolicy()
    soon, later = issued("a.test", 0.0), issued("b.test", 10 * DAY)
    assert next_wake([soon, later], 59 * DAY, policy, longest=3 * DAY) == DAY
    assert next_wake([soon, later], 0.0, policy, longest=300.0) == 300.0
    assert next_wake([soon], 61 * DAY, policy, longest=300.0) == 0.0  # overdue: now


def test_a_fixed_renewal_age_replaces_the_share_for_tests() -> None:
    policy = RenewalPolicy(renew_after=4.0)
    assert renew_at(100.0, 100.0 + 5 * 365 * DAY, policy) == 104.0
    assert renew_at(100.0, 102.0, policy) == 102.0  # never after expiry


def test_an_expired_certificate_reads_as_expired_whatever_was_stored() -> None:
    cert = issued("a.test", 0.0)
    assert state_at(cert, 89 * DAY) is CertState.VALID
    assert state_at(cert, 90 * DAY) is CertState.EXPIRED
    assert state_at(DomainCert("h.test", AppName("shop")), 0.0) is CertState.NONE
