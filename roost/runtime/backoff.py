"""Restart back-off for crashing instances and zygotes: pure arithmetic on a crash
streak. No clock, no I/O: the supervisor passes in how long the process was healthy."""

from __future__ import annotations

from dataclasses import dataclass

CRASH_LOOP_STREAK = 3
"""This many crashes in a row, none after a healthy spell, and the app is `crash-looping`."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """1 s doubling to 5 min; a process healthy for 10 min starts the streak afresh.

    >>> policy = Backoff(first=1.0, maximum=300.0, reset=600.0)
    >>> [policy.delay(streak) for streak in (1, 2, 3, 10)]
    [1.0, 2.0, 4.0, 300.0]
    """

    first: float = 1.0
    maximum: float = 300.0
    reset: float = 600.0

    def delay(self, streak: int) -> float:
        """Seconds to wait before the restart that follows crash number `streak` (0: none)."""
        if streak <= 0:
            return 0.0
        exponent = min(streak - 1, 64)  # 2**64 is past any maximum; keeps the float finite
        return min(self.maximum, self.first * 2.0**exponent)

    def next_streak(self, streak: int, healthy_seconds: float) -> int:
        """The streak after one more crash of a process that was healthy for `healthy_seconds`."""
        if healthy_seconds >= self.reset:
            return 1
        return streak + 1


BACKOFF_SLACK = 0.01  # seconds: a timer that fires this early is on time, not another back-off


def is_crash_looping(streak: int) -> bool:
    return streak >= CRASH_LOOP_STREAK
