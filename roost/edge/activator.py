"""The activator: requests that found no free slot wait here, FIFO, per deployment.

It asks the runtime for capacity (one start covers many waiters), hands out
slots as `capacity_changed` arrives, and fails fast when the queue is full,
the wait too long, or the instance could not start. It never starts a process
itself. Slots change hands synchronously: a slot taken is a slot handed over,
or given back if handing it over raises.

It also tells a waiter what it waited for (X-Roost-Start): a start, if its
slot is on an instance that became ready after it queued; else only a slot.
And it tells the runtime where the demand comes from: the region of the newest
waiter (the one a forwarding edge named, else this edge's own).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from roost.model import DeploymentId, InstanceId
from roost.runtime.protocol import Runtime, Slot

RETRY_AFTER_FULL = 1
RETRY_AFTER_TIMEOUT = 5
LIMIT_INSTEAD = 64  # slots held on a failed instance while looking for another one


class Waiting(Protocol):
    """A request waiting for a slot; exactly one of the two is called, once."""

    def activated(self, slot: Slot, started: bool) -> None:
        """Here is a slot: the request owns it from now on and must release it. `started`: the
        slot's instance became ready while the request waited (it waited for a start, not a slot)."""

    def not_activated(self, status: int, message: str, retry_after: int | None) -> None:
        """No slot will come: answer with `status`."""


class Waiter:
    __slots__ = ("deployment", "epoch", "region", "request", "timer")

    def __init__(self, deployment: DeploymentId, request: Waiting, epoch: int, region: str) -> None:
        self.deployment = deployment
        self.request = request
        self.epoch = epoch  # the activator's ready count when it queued
        self.region = region  # where the request came from ("" unknown)
        self.timer: asyncio.TimerHandle | None = None


class Activator:
    """Bounded FIFO queues of waiting requests, one per deployment."""

    def __init__(self, runtime: Runtime, limit_queue: int, timeout_activate: float, region: str = "") -> None:
        self._runtime = runtime
        self._region = region  # this edge's own: the demand's region when a request names none
        self._limit_queue = limit_queue
        self._timeout = timeout_activate
        self._queues: dict[DeploymentId, deque[Waiter]] = {}
        self._wakes: set[DeploymentId] = set()
        self._epoch = 0  # instances seen becoming ready so far
        self._ready_since: dict[InstanceId, int] = {}  # ready instance -> the epoch it became ready in

    def try_acquire(self, deployment: DeploymentId) -> Slot | None:
        """A slot at once, unless none is free or others wait already (they go first)."""
        if deployment in self._queues:
            return None
        return self._runtime.try_acquire(deployment)

    def instead_of(self, deployment: DeploymentId, same: Slot) -> Slot:
        """A slot off `same`'s instance if any other has room, else `same` (for a retry after a
        failed try). The runtime picks the least loaded, so holding slots on the failed instance
        while asking moves its choice away; that instance's concurrency bounds the loop, and
        LIMIT_INSTEAD a slot source without one (another edge, in a cluster). Rare and
        synchronous: every slot taken is handed back or returned before it returns."""
        held = [same]
        slot = self.try_acquire(deployment)
        while slot is not None and slot.instance == same.instance and len(held) < LIMIT_INSTEAD:
            held.append(slot)
            slot = self.try_acquire(deployment)
        if slot is not None and slot.instance == same.instance:
            held.append(slot)
            slot = None
        if slot is None:
            slot = held.pop()  # no other instance has room: the failed one again
        for extra in held:
            extra.release()
        return slot

    def wait(self, deployment: DeploymentId, request: Waiting, region: str = "") -> Waiter | None:
        """Queue `request`, or None when the queue is full (the caller sheds it with a 503).
        `region`: where the request came from, when a forwarding edge said so."""
        queue = self._queues.get(deployment)
        if queue is None:
            queue = self._queues[deployment] = deque()
        elif len(queue) >= self._limit_queue:
            return None
        waiter = Waiter(deployment, request, self._epoch, region or self._region)
        waiter.timer = asyncio.get_running_loop().call_later(self._timeout, self._expire, waiter)
        queue.append(waiter)
        self._runtime.request_capacity(deployment, len(queue), waiter.region)
        return waiter

    def leave(self, waiter: Waiter) -> None:
        """The request gave up (its client left): forget it without an answer."""
        if waiter.timer is not None:
            waiter.timer.cancel()
        queue = self._queues.get(waiter.deployment)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._queues[waiter.deployment]

    def instance_changed(self, instance: InstanceId, ready: bool) -> None:
        """The runtime's news of one instance. An instance ready before the edge heard of it counts
        as ready from the start (epoch 0): a request waiting for its slot is hot."""
        if not ready:
            self._ready_since.pop(instance, None)
        elif instance not in self._ready_since:  # starting -> ready (a repeated READY keeps its epoch)
            self._epoch += 1
            self._ready_since[instance] = self._epoch

    def waiting(self, deployment: DeploymentId) -> int:
        queue = self._queues.get(deployment)
        return 0 if queue is None else len(queue)

    def capacity_changed(self, deployment: DeploymentId) -> None:
        """Wake waiters on the next loop turn: never inside the runtime's own call (a release, say)."""
        if deployment in self._queues and deployment not in self._wakes:
            self._wakes.add(deployment)
            asyncio.get_running_loop().call_soon(self._wake, deployment)

    def _wake(self, deployment: DeploymentId) -> None:
        self._wakes.discard(deployment)
        queue = self._queues.get(deployment)
        while queue:
            slot = self._runtime.try_acquire(deployment)
            if slot is None:
                break
            waiter = queue.popleft()
            if waiter.timer is not None:
                waiter.timer.cancel()
            started = self._ready_since.get(slot.instance, 0) > waiter.epoch
            try:
                waiter.request.activated(slot, started)
            except BaseException:
                slot.release()
                raise
        if queue:
            self._runtime.request_capacity(deployment, len(queue), queue[-1].region)
        else:
            self._queues.pop(deployment, None)

    def start_failed(self, deployment: DeploymentId, reason: str, retry_after: int | None = None) -> None:
        """Fail every waiter of the deployment now rather than at the timeout: 502 when the app
        could not start, 503 with Retry-After when the host had no room for it (shedding)."""
        if retry_after is not None:
            self._fail_all(deployment, 503, "the server is at capacity, try again shortly", retry_after)
        else:
            self._fail_all(deployment, 502, "the app could not start", None)

    def _expire(self, waiter: Waiter) -> None:
        waiter.timer = None
        self.leave(waiter)
        waiter.request.not_activated(503, "no instance became ready in time", RETRY_AFTER_TIMEOUT)

    def _fail_all(self, deployment: DeploymentId, status: int, message: str, retry_after: int | None) -> None:
        queue = self._queues.pop(deployment, None)
        while queue:
            waiter = queue.popleft()
            if waiter.timer is not None:
                waiter.timer.cancel()
            waiter.request.not_activated(status, message, retry_after)

    def close(self) -> None:
        """Shutdown: every waiter gets a 503 now."""
        for deployment in list(self._queues):
            self._fail_all(deployment, 503, "shutting down", RETRY_AFTER_FULL)
