"""Concurrency slots in front of Triton, a bounded FIFO queue for the overflow, and a measured Retry-After.

One pool per route family (inference: /layout-parsing; non-inference: /restructure-pages). A request takes
its slot after it has been validated and before any costly work, and gives it back on every path (success,
error, timeout, cancellation when the client leaves), because the slot is an `async with` around the work.
A request finding every slot busy waits in the queue; when the queue is full, or its wait passes
`HPS_MAX_QUEUE_WAIT`, it gets 503 with a Retry-After estimated from the service times this process measured
recently and the request's place in line.

The sizes are totals for the whole gateway. One process keeps its slots in memory (`LocalPool`); the workers
of `python -m gateway` share one count (`gateway.shared_admission.SharedPool`), so that a request is refused
only when the gateway as a whole is full, whichever worker the kernel gave its connection to.
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


class QueueTimeout(Exception):
    """A waiter's `HPS_MAX_QUEUE_WAIT` (or its request's deadline) passed before a slot came."""


def expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(QueueTimeout())


class Pool:
    """What every pool does: the `slot()` context, the Retry-After estimate and the metrics. Subclasses say
    how a slot is taken (`_acquire`, which returns a token) and given back (`_release`)."""

    def __init__(self, name: str, *, slots: int, queue_size: int, max_wait: float) -> None:
        self.name = name
        self.slots = slots
        self.queue_size = queue_size
        self.max_wait = max_wait
        self._started: dict[int, float] = {}  # id of a slot holder -> when it got the slot
        self._recent: deque[float] = deque(maxlen=_WINDOW)
        metrics.SLOTS.labels(name).set(slots)
        metrics.IN_FLIGHT.labels(name)  # present (at 0) from the start, for dashboards
        metrics.QUEUED.labels(name)

    @property
    def active(self) -> int:
        raise NotImplementedError

    @property
    def queued(self) -> int:
        raise NotImplementedError

    async def _acquire(self, deadline: float, max_wait: float | None) -> object:
        raise NotImplementedError

    def _release(self, token: object) -> None:
        raise NotImplementedError

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

    def reject(self, reason: str, position: int, message: str) -> Overloaded:
        metrics.reject(reason)
        seconds = self.retry_after(position)
        return Overloaded(f"{message}; retry after {seconds} s", headers={"Retry-After": str(seconds)})

    def gave_up(self, reason: BaseException, position: int, wait: float, remaining: float) -> BaseException:
        """What a waiter that did not get its slot raises: a timeout is 504 when the request's own deadline
        ran out, else 503; anything else (a cancellation) goes on as it is."""
        if not isinstance(reason, QueueTimeout):
            return reason
        if wait >= remaining:
            return UpstreamTimeout("Gateway timeout while waiting for a free slot")
        return self.reject("queue_timeout", position, "Server busy: no free slot in time")

    def wait_bound(self, deadline: float, max_wait: float | None = None) -> tuple[float, float]:
        """(how long a waiter may wait, how long its request has left); `max_wait` overrides the pool's."""
        remaining = deadline - time.monotonic()
        return max(min(self.max_wait if max_wait is None else max_wait, remaining), 0), remaining

    @asynccontextmanager
    async def slot(self, deadline: float, *, max_wait: float | None = None) -> AsyncIterator[None]:
        """Hold one slot for the body of the `async with`; `deadline` is the request's (time.monotonic), and
        `max_wait` how long it may wait in line (default: `HPS_MAX_QUEUE_WAIT`)."""
        metrics.QUEUED.labels(self.name).inc()
        try:
            token = await self._acquire(deadline, max_wait)
        finally:
            metrics.QUEUED.labels(self.name).dec()
        key, started = object(), time.monotonic()
        self._started[id(key)] = started
        metrics.IN_FLIGHT.labels(self.name).inc()
        try:
            yield
        finally:
            del self._started[id(key)]
            self._recent.append(time.monotonic() - started)
            metrics.IN_FLIGHT.labels(self.name).dec()
            self._release(token)


class LocalPool(Pool):
    """The slots of one process, in memory: exact FIFO, a freed slot handed straight to the next waiter."""

    def __init__(self, name: str, *, slots: int, queue_size: int, max_wait: float) -> None:
        super().__init__(name, slots=slots, queue_size=queue_size, max_wait=max_wait)
        self._free = slots
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def active(self) -> int:
        return self.slots - self._free

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def _acquire(self, deadline: float, max_wait: float | None) -> object:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return None
        if len(self._waiters) >= self.queue_size:
            raise self.reject("queue_full", len(self._waiters) + 1, "Server busy: queue full")
        wait, remaining = self.wait_bound(deadline, max_wait)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        # A timer, not asyncio.wait_for: on 3.11 wait_for can swallow a cancellation that arrives together
        # with the slot, and the request would then run for a client that has gone.
        timer = loop.call_later(wait, expire, waiter)
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(None)  # the slot arrived as we gave up: pass it to the next in line
            position = self._waiters.index(waiter) + 1 if waiter in self._waiters else 1
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            raise self.gave_up(exc, position, wait, remaining) from None
        finally:
            timer.cancel()
        return None

    def _release(self, token: object) -> None:
        """Give a freed slot to the first live waiter, or back to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
