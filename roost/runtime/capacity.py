"""Pure decisions about how many instances a deployment needs and which ones serve or go.

Everything is passed in; nothing here touches a process, a socket or the clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TypeVar

from roost.model import AppConfig, Mode

Key = TypeVar("Key")


def floor_count(config: AppConfig) -> int:
    """Instances kept running whatever the traffic: a service keeps at least one."""
    if config.mode is Mode.SERVICE:
        return max(1, config.scale.min)
    return max(0, config.scale.min)


def clamp_count(config: AppConfig, count: int) -> int:
    """`count` within the deployment's floor and `scale.max`."""
    return max(floor_count(config), min(max(config.scale.max, floor_count(config)), count))


def starts_needed(slots: int, free: int, starting: int, live: int, concurrency: int, maximum: int) -> int:
    """How many instances to start so that `slots` waiting requests find room.

    `free` slots on ready instances and `starting` instances (each good for
    `concurrency` slots) count first, so many waiters cause one start; never
    beyond `maximum` live (starting + ready) instances.

    >>> starts_needed(slots=3, free=0, starting=1, live=1, concurrency=10, maximum=5)
    0
    >>> starts_needed(slots=25, free=0, starting=0, live=0, concurrency=10, maximum=2)
    2
    """
    concurrency = max(1, concurrency)
    missing = slots - free - starting * concurrency
    if missing <= 0:
        return 0
    return max(0, min(math.ceil(missing / concurrency), maximum - live))


def pick_least_loaded(candidates: Iterable[tuple[Key, int]], concurrency: int) -> Key | None:
    """The candidate with the fewest requests in flight that still has room (first one on a tie)."""
    best: Key | None = None
    best_load = concurrency
    for key, in_flight in candidates:
        if in_flight < best_load:
            best, best_load = key, in_flight
            if in_flight == 0:
                break
    return best


def pick_surplus(candidates: Sequence[tuple[Key, bool, int, float]], count: int) -> list[Key]:
    """Which `count` instances to drain when scaling down: starting ones first, then the least
    loaded, then the newest. Each candidate is (key, is_ready, in_flight, started_at)."""
    if count <= 0:
        return []
    ordered = sorted(candidates, key=lambda c: (c[1], c[2], -c[3]))
    return [c[0] for c in ordered[:count]]
