"""When a certificate is due: renewal at two thirds of its lifetime, back-off after failures.

Pure: every function takes `now` (seconds since the epoch) and does no I/O, so the
schedule is tested with a made-up clock. The loop that applies it is control's.
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.model import CertSource, CertState, DomainCert

RENEW_SHARE = 2 / 3  # renew once this share of the lifetime has passed (Let's Encrypt advises 2/3)
BACKOFF_FIRST = 60.0  # the first retry after a failure
BACKOFF_MAX = 6 * 3600.0  # never wait longer between tries (a 90-day certificate has 30 days of margin)
BACKOFF_FACTOR = 4.0  # 1 min, 4 min, 16 min, ~1 h, ~4 h, 6 h: well inside Let's Encrypt's rate limits


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    """`renew_after`: a fixed age instead of the share of the lifetime (tests: pebble's
    certificates last five years)."""

    share: float = RENEW_SHARE
    renew_after: float | None = None
    backoff_first: float = BACKOFF_FIRST
    backoff_max: float = BACKOFF_MAX


def renew_at(not_before: float, not_after: float, policy: RenewalPolicy = RenewalPolicy()) -> float:
    """When a certificate valid from `not_before` to `not_after` should be renewed.

    >>> renew_at(0.0, 90.0)
    60.0
    """
    if policy.renew_after is not None:
        return min(not_before + policy.renew_after, not_after)
    return not_before + (not_after - not_before) * policy.share


def backoff(failures: int, policy: RenewalPolicy = RenewalPolicy()) -> float:
    """Seconds to wait after the `failures`-th failure in a row (1 is the first).

    >>> [backoff(n) for n in (1, 2, 3)]
    [60.0, 240.0, 960.0]
    """
    return min(policy.backoff_max, policy.backoff_first * BACKOFF_FACTOR ** max(0, failures - 1))


def due_at(cert: DomainCert, policy: RenewalPolicy = RenewalPolicy()) -> float | None:
    """When Roost should next ask the CA for `cert`'s domain; None: never (manual, or no HTTPS).

    After a failure the back-off decides, else the renewal time; a pending domain is due now (0).
    """
    if cert.source is not CertSource.ACME:
        return None
    if cert.failures and cert.next_attempt is not None:
        return cert.next_attempt
    if cert.not_before is None or cert.not_after is None:
        return 0.0
    return renew_at(cert.not_before, cert.not_after, policy)


def due(certs: list[DomainCert], now: float, policy: RenewalPolicy = RenewalPolicy()) -> list[DomainCert]:
    """The certificates to (re)issue at `now`, the earliest first."""
    timed = [(at, cert) for cert in certs if (at := due_at(cert, policy)) is not None and at <= now]
    return [cert for _, cert in sorted(timed, key=lambda pair: pair[0])]


def next_wake(certs: list[DomainCert], now: float, policy: RenewalPolicy, longest: float) -> float:
    """Seconds until the next certificate is due, at most `longest` (the loop looks again then)."""
    times = [at for cert in certs if (at := due_at(cert, policy)) is not None]
    return max(0.0, min([longest, *(at - now for at in times)]))


def state_at(cert: DomainCert, now: float) -> CertState:
    """The state `roost domains list` shows: an expired certificate is expired whatever was stored."""
    if cert.source is None:
        return CertState.NONE
    if cert.not_after is not None and cert.not_after <= now:
        return CertState.EXPIRED
    return cert.state


def after_failure(cert: DomainCert, now: float, policy: RenewalPolicy = RenewalPolicy()) -> tuple[int, float]:
    """(failures, next attempt) once one more try failed."""
    failures = cert.failures + 1
    return failures, now + backoff(failures, policy)
