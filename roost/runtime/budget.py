"""The host's memory budget: instances start only while the sum of their memory limits fits.

Every live instance (starting, ready, draining) reserves its `limits.memory`. When a
new one would not fit, the least recently used idle instances of *other* apps are
stopped first (an idle function instance is the cheapest thing to give up); if that
is still not enough, the start is refused and the router sheds with 503.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Candidate(Generic[K]):
    """An instance that could be stopped to make room: idle, ready, of another app."""

    key: K
    memory: int
    last_used: float


@dataclass(frozen=True, slots=True)
class Plan(Generic[K]):
    fits: bool
    evict: tuple[K, ...] = ()


def plan_room(budget: int, reserved: int, need: int, candidates: Sequence[Candidate[K]]) -> Plan[K]:
    """Whether `need` more bytes fit under `budget` with `reserved` in use, and which candidates
    (least recently used first, as few as possible) must stop for it. A budget of 0 is no budget.

    >>> plan_room(100, 80, 30, [Candidate("a", 10, 5.0), Candidate("b", 10, 1.0)])
    Plan(fits=True, evict=('b',))
    >>> plan_room(100, 80, 50, [Candidate("a", 10, 5.0)])
    Plan(fits=False, evict=())
    """
    if budget <= 0 or reserved + need <= budget:
        return Plan(True)
    evict: list[K] = []
    for candidate in sorted(candidates, key=lambda c: c.last_used):
        evict.append(candidate.key)
        reserved -= candidate.memory
        if reserved + need <= budget:
            return Plan(True, tuple(evict))
    return Plan(False)


def describe(size: int) -> str:
    return f"{size / (1 << 30):.1f} GB" if size >= 1 << 30 else f"{size // (1 << 20)} MB"
