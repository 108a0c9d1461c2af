"""Concurrency slots in front of Triton, a bounded FIFO queue for the overflow, and a measured Retry-After.

One `Pool` per route family (inference: /layout-parsing; non-inference: /restructure-pages). A request takes
its slot after it has been validated and before any costly work, and gives it back on every path (success,
error, timeout, cancellation when the client leaves), because the slot is an `async with` around the work.
A request finding every slot busy waits in the queue; when the queue is full, or its wait passes
`HPS_MAX_QUEUE_WAIT`, it gets 503 with a Retry-After estimated from the service times this pool measured
recently and the request's place in line. The sizes here are this worker's share (see `gateway.workers`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway import metrics
from gateway.errors import Overloaded, UpstreamTimeout

_WINDOW = 32  # recent service times kept for the estimate


class _QueueTimeout(Exception):
    pass


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(_QueueTimeout())


class Pool:
    def __init__(self, name: str, *, slots: int, queue_size: int, max_wait: float) -> None:
        self.name = name
        self.slots = slots
        self.queue_size = queue_size
        self.max_wait = max_wait
        self._free = slots
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._started: dict[int, float] = {}  # id of a slot holder -> when it got the slot
        self._recent: deque[float] = deque(maxlen=_WINDOW)
        metrics.SLOTS.labels(name).set(slots)
        metrics.IN_FLIGHT.labels(name)  # present (at 0) from the start, for dashboards
        metrics.QUEUED.labels(name)

    @property
    def active(self) -> int:
        return self.slots - self._free

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def service_time(self) -> float:
        """Mean recent service time; until there is one, the age of the oldest request in service."""
        if self._recent:
            return sum(self._recent) / len(self._recent)
        now = time.monotonic()
        return max((now - t for t in self._started.values()), default=1.0)

    def retry_after(self, position: int) -> int:
        """Seconds until a request at `position` in line (1 = next) is likely to get a slot."""
        rounds = math.ceil(position / max(self.slots, 1))
        return max(1, math.ceil(self.service_time() * rounds))

    def _reject(self, reason: str, position: int, message: str) -> Overloaded:
        metrics.reject(reason)
        seconds = self.retry_after(position)
        return Overloaded(f"{message}; retry after {seconds} s", headers={"Retry-After": str(seconds)})

    async def _acquire(self, deadline: float) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        if len(self._waiters) >= self.queue_size:
            raise self._reject("queue_full", len(self._waiters) + 1, "Server busy: queue full")
        remaining = deadline - time.monotonic()
        wait = max(min(self.max_wait, remaining), 0)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        # A timer, not asyncio.wait_for: on 3.11 wait_for can swallow a cancellation that arrives together
        # with the slot, and the request would then run for a client that has gone.
        timer = loop.call_later(wait, _expire, waiter)
        self._waiters.append(waiter)
        metrics.QUEUED.labels(self.name).inc()
        try:
            await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._hand_on()  # the slot arrived as we gave up: pass it to the next in line
            position = self._waiters.index(waiter) + 1 if waiter in self._waiters else 1
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if isinstance(exc, _QueueTimeout):
                if wait >= remaining:
                    raise UpstreamTimeout("Gateway timeout while waiting for a free slot") from None
                raise self._reject("queue_timeout", position, "Server busy: no free slot in time") from None
            raise
        finally:
            timer.cancel()
            metrics.QUEUED.labels(self.name).dec()

    def _hand_on(self) -> None:
        """Give a freed slot to the first live waiter, or back to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    @asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[None]:
        """Hold one slot for the body of the `async with`; `deadline` is the request's (time.monotonic)."""
        await self._acquire(deadline)
        key, started = object(), time.monotonic()
        self._started[id(key)] = started
        metrics.IN_FLIGHT.labels(self.name).inc()
        try:
            yield
        finally:
            del self._started[id(key)]
            self._recent.append(time.monotonic() - started)
            metrics.IN_FLIGHT.labels(self.name).dec()
            self._hand_on()
