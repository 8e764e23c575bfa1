"""Brute-force throttling of failed logins, per client address. Pure: `now` is an argument.

Attempts are counted from the moment they are admitted (`reserve`), not when bcrypt answers:
parallel requests from one address share one budget, so no more than LOCKOUT_AFTER guesses are
ever evaluated per address before the lockout, however many arrive at once.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW = 15 * 60.0
FREE_FAILURES = 3
LOCKOUT_AFTER = 8
LOCKOUT_SECONDS = 5 * 60.0
DELAY_MAX = 2.0


@dataclass(slots=True)
class _Record:
    failures: int
    first_at: float
    locked_until: float = 0.0
    pending: int = 0  # admitted attempts whose answer is not known yet


@dataclass(frozen=True, slots=True)
class Verdict:
    """`locked`: answer 429 now. `busy`: the address's budget is all in flight, ask again once
    one of them settles. Else wait `delay` seconds before checking."""

    locked: bool
    delay: float
    retry_after: float
    busy: bool = False


class Throttle:
    """Example::

    verdict = throttle.reserve(address, now)   # not locked, not busy: one attempt admitted
    ... sleep verdict.delay, check the credentials ...
    throttle.failed(address, now)  # or throttle.succeeded(address)
    """

    def __init__(self, limit_entries: int = 10_000) -> None:
        self._records: dict[str, _Record] = {}
        self._limit_entries = limit_entries

    def check(self, address: str, now: float) -> Verdict:
        """The verdict for one more attempt from `address`, admitting nothing."""
        record = self._current(address, now)
        if record is None:
            return Verdict(False, 0.0, 0.0)
        if record.locked_until > now:
            return Verdict(True, 0.0, record.locked_until - now)
        attempts = record.failures + record.pending
        if attempts >= LOCKOUT_AFTER:
            return Verdict(False, 0.0, 0.0, busy=True)
        extra = attempts - FREE_FAILURES
        delay = 0.0 if extra < 0 else min(DELAY_MAX, 0.25 * 2**extra)
        return Verdict(False, delay, 0.0)

    def reserve(self, address: str, now: float) -> Verdict:
        """`check`, and when the attempt may go ahead count it as pending until `failed`/`succeeded`."""
        verdict = self.check(address, now)
        if not verdict.locked and not verdict.busy:
            self._record(address, now).pending += 1
        return verdict

    def failed(self, address: str, now: float) -> None:
        record = self._record(address, now)
        record.pending = max(0, record.pending - 1)
        record.failures += 1
        if record.failures >= LOCKOUT_AFTER:
            record.locked_until = now + LOCKOUT_SECONDS

    def succeeded(self, address: str) -> None:
        self._records.pop(address, None)

    def _current(self, address: str, now: float) -> _Record | None:
        """The address's record, or None once its window has passed (pending attempts are kept)."""
        record = self._records.get(address)
        if record is None or record.locked_until > now or now - record.first_at <= WINDOW:
            return record
        if record.pending:
            record = self._records[address] = _Record(0, now, pending=record.pending)
            return record
        del self._records[address]
        return None

    def _record(self, address: str, now: float) -> _Record:
        record = self._current(address, now)
        if record is None:
            if len(self._records) >= self._limit_entries:
                self._records.pop(next(iter(self._records)))
            record = self._records[address] = _Record(0, now)
        return record
