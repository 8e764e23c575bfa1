"""Brute-force throttling of password logins, per source. Pure: `now` is an argument; no I/O.

An attempt has two sources: the client address and the user name it presents. Each source counts
its failures; the attempt waits the longer delay of its two sources before bcrypt runs (so how
long an answer takes says nothing about the password), and attempts are counted from the moment
they are admitted: no more than `lockout_after` guesses per source are evaluated before it locks,
however many arrive at once. A locked source is not refused outright (a valid password must still
get in): its attempts are checked one at a time, each after `delay_locked`, and a failure is
answered 429. The throttle never asks anyone to wait unless an attempt of the same source is in
flight, whose settling wakes the waiter; when a lockout ends, the failures that caused it are
forgotten (they have been paid for). Tokens are not throttled here: see auth.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """The numbers; `roost serve --login-lockout` sets `lockout_seconds`."""

    window: float = 15 * 60.0  # failures older than this (and no lockout) are forgotten
    free_failures: int = 3  # failures before any delay
    lockout_after: int = 8  # failures that lock a source
    lockout_seconds: float = 5 * 60.0  # how long; every failure while locked starts it again
    delay_max: float = 2.0  # the growing delay stops here
    delay_locked: float = 5.0  # before each check of a locked source's one attempt in flight

    def delay(self, attempts: int) -> float:
        """The delay before the check when `attempts` are already counted (failed or in flight)."""
        extra = attempts - self.free_failures
        return 0.0 if extra < 0 else min(self.delay_max, 0.25 * 2**extra)


@dataclass(frozen=True, slots=True)
class Sources:
    """Who an attempt comes from, as the throttle counts it."""

    address: str
    name: str


class Admission(enum.Enum):
    ADMITTED = "admitted"  # check the password after `delay`, then `settle`
    WAIT = "wait"  # the budget of a source is in flight: ask again once one of its attempts settles
    REFUSED = "refused"  # 429 now: a source is locked and its one attempt is in flight


@dataclass(frozen=True, slots=True)
class Verdict:
    """`locked`: admitted while a source is locked, so a failure is answered 429."""

    admission: Admission
    delay: float = 0.0
    retry_after: float = 0.0
    locked: bool = False


@dataclass(slots=True)
class _Record:
    first_at: float
    failures: int = 0
    locked_until: float = 0.0
    pending: int = 0  # admitted attempts whose answer is not known yet

    def is_locked(self, now: float) -> bool:
        return self.locked_until > now


class _Table:
    """The records of one kind of source, bounded: a full table forgets first what it can spare
    (neither locked nor in flight), so a flood of new names cannot flush a lockout out."""

    def __init__(self, policy: ThrottlePolicy, limit_entries: int) -> None:
        self._policy = policy
        self._limit_entries = limit_entries
        self.records: dict[str, _Record] = {}

    def current(self, key: str, now: float) -> _Record | None:
        """The key's record, or None once there is nothing left to remember (pending attempts are kept)."""
        record = self.records.get(key)
        if record is None or record.is_locked(now) or not self._is_over(record, now):
            return record
        if record.pending:
            record = self.records[key] = _Record(now, pending=record.pending)
            return record
        del self.records[key]
        return None

    def record(self, key: str, now: float) -> _Record:
        record = self.current(key, now)
        if record is None:
            if len(self.records) >= self._limit_entries:
                self._evict(now)
            record = self.records[key] = _Record(now)
        return record

    def _is_over(self, record: _Record, now: float) -> bool:
        # a lockout that has ended forgives its failures; else the window forgets them
        return bool(record.locked_until) or now - record.first_at > self._policy.window

    def _evict(self, now: float) -> None:
        spare = (k for k, r in self.records.items() if not r.pending and not r.is_locked(now))
        self.records.pop(next(spare, next(iter(self.records))))


class Throttle:
    """Example::

    verdict = throttle.reserve(Sources(address, user), now)
    if verdict.admission is Admission.ADMITTED:
        ... sleep verdict.delay, check the password ...
        retry_after = throttle.settle(sources, ok, now)  # > 0: answer a failure with 429
    """

    def __init__(self, policy: ThrottlePolicy | None = None, limit_entries: int = 10_000) -> None:
        self.policy = policy or ThrottlePolicy()
        self.addresses = _Table(self.policy, limit_entries)
        self.names = _Table(self.policy, limit_entries)

    def reserve(self, sources: Sources, now: float) -> Verdict:
        """The verdict for one more attempt; an admitted one counts as pending until `settle`."""
        records = self._current(sources, now)
        locked = [r for r in records if r.is_locked(now)]
        if any(r.pending for r in locked):
            return Verdict(Admission.REFUSED, retry_after=self.policy.delay_locked)
        if any(r.failures + r.pending >= self.policy.lockout_after for r in records if not r.is_locked(now)):
            return Verdict(Admission.WAIT)  # such a record has pending > 0: failures alone would have locked it
        if locked:
            delay = self.policy.delay_locked
        else:
            delay = max((self.policy.delay(r.failures + r.pending) for r in records), default=0.0)
        for record in self._records(sources, now):
            record.pending += 1
        return Verdict(Admission.ADMITTED, delay, locked=bool(locked))

    def settle(self, sources: Sources, ok: bool, now: float) -> float:
        """Record the outcome of an admitted attempt. Returns the seconds until the lockout of
        its sources ends (0: none is locked). A success forgets no failure: an attacker sharing
        the address or name must not get a fresh budget each time the owner logs in."""
        retry_after = 0.0
        for record in self._records(sources, now):
            record.pending = max(0, record.pending - 1)
            if not ok:
                record.failures += 1
                if record.failures >= self.policy.lockout_after:
                    # unlocked -> locked: too many failures (while locked: starts again)
                    record.locked_until = now + self.policy.lockout_seconds
            if record.is_locked(now):
                retry_after = max(retry_after, record.locked_until - now)
        return retry_after

    def _current(self, sources: Sources, now: float) -> list[_Record]:
        found = (self.addresses.current(sources.address, now), self.names.current(sources.name, now))
        return [r for r in found if r is not None]

    def _records(self, sources: Sources, now: float) -> tuple[_Record, _Record]:
        return self.addresses.record(sources.address, now), self.names.record(sources.name, now)
