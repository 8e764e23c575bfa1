"""Brute-force throttling of failed logins, per client address. Pure: `now` is an argument."""

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


@dataclass(frozen=True, slots=True)
class Verdict:
    """`locked`: answer 429 now. Else wait `delay` seconds before checking."""

    locked: bool
    delay: float
    retry_after: float


class Throttle:
    def __init__(self, limit_entries: int = 10_000) -> None:
        self._records: dict[str, _Record] = {}
        self._limit_entries = limit_entries

    def check(self, address: str, now: float) -> Verdict:
        record = self._records.get(address)
        if record is None or (now - record.first_at > WINDOW and record.locked_until <= now):
            self._records.pop(address, None)
            return Verdict(False, 0.0, 0.0)
        if record.locked_until > now:
            return Verdict(True, 0.0, record.locked_until - now)
        extra = record.failures - FREE_FAILURES
        delay = 0.0 if extra < 0 else min(DELAY_MAX, 0.25 * 2**extra)
        return Verdict(False, delay, 0.0)

    def failed(self, address: str, now: float) -> None:
        record = self._records.get(address)
        if record is None or (now - record.first_at > WINDOW and record.locked_until <= now):
            if len(self._records) >= self._limit_entries:
                self._records.pop(next(iter(self._records)))
            record = self._records[address] = _Record(0, now)
        record.failures += 1
        if record.failures >= LOCKOUT_AFTER:
            record.locked_until = now + LOCKOUT_SECONDS

    def succeeded(self, address: str) -> None:
        self._records.pop(address, None)
