"""Fair sharing of the VLM calls in flight between all requests in the process.

One bound (`max_concurrency`) caps the calls in flight across every request. Waiting calls sit in one FIFO
queue per owner (a request) and are started round-robin between owners, an owner that has not been served
yet going first: a one-page request arriving behind a 30-page one gets the next free slot, where a plain
semaphore would make it wait for the whole document. One owner may hold at most `request_share` of the
slots, so that the next free slot is not the earliest a newcomer can start: a call in flight cannot be taken
back, and with the bound matched to the server's capacity a newcomer would wait up to one service time.

An owner may be background work (a page of an asynchronous job): its calls start only when no interactive
owner has one waiting, so a long job keeps the VLM busy without making interactive requests wait behind it
for more than the calls already in flight.

What a call is, is not this module's business: it is given a coroutine function that makes one (see
`calls.VLMCaller`). A failed call fails its owner's pending `recognize` calls at once and cancels the owner's
other work; a cancelled `recognize` drops its queued calls and cancels those in flight. Other owners never
notice.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from docengine.errors import CancelledRequestError, VLMUnavailableError
from docengine.types import VLMTask

Call = Callable[[VLMTask], Awaitable[str]]


@dataclass(eq=False)
class _Batch:
    """One `recognize` call: its texts fill in as its calls finish."""

    owner: str
    texts: list[str | None]
    done: asyncio.Future[list[str]]
    left: int

    def finish(self, index: int, text: str) -> None:
        if self.done.done():
            return
        self.texts[index] = text
        self.left -= 1
        if self.left == 0:
            self.done.set_result([t or "" for t in self.texts])


@dataclass(eq=False)
class _Job:
    batch: _Batch
    index: int
    task: VLMTask


@dataclass(eq=False)
class _Owner:
    """The work of one owner: its queue, its calls in flight and its open `recognize` calls."""

    name: str
    queue: deque[_Job] = field(default_factory=deque)
    running: dict[asyncio.Task[str], _Job] = field(default_factory=dict)
    batches: set[_Batch] = field(default_factory=set)
    served: bool = False
    background: bool = False


class FairDispatcher:
    """Bounded, fair dispatch of `call`s between owners."""

    def __init__(self, call: Call, *, max_concurrency: int = 200, request_share: float = 1.0) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if not 0 < request_share <= 1:
            raise ValueError("request_share must be in (0, 1]")
        self._call = call
        self.max_concurrency = max_concurrency
        self.max_per_owner = max(1, int(max_concurrency * request_share))
        self._owners: dict[str, _Owner] = {}
        # Owners with queued calls, in the order they are served: interactive before background, and within
        # each those never served yet (they go first) before the round-robin of those already served.
        self._rings: tuple[deque[_Owner], ...] = (deque(), deque(), deque(), deque())
        self._capped: set[_Owner] = set()       # owners with queued calls and max_per_owner in flight
        self._in_flight = 0
        self._closed = False
        self.failures_total = 0    # calls that failed for good

    # --- observability ------------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Calls holding a slot (encoding, waiting for the server, or between retries)."""
        return self._in_flight

    def queued(self, owner: str | None = None) -> int:
        """Calls waiting for a slot, of one owner or of all."""
        if owner is not None:
            state = self._owners.get(owner)
            return len(state.queue) if state else 0
        return sum(len(s.queue) for s in self._owners.values())

    def owners(self) -> int:
        """Owners (requests) with calls queued, in flight or awaited."""
        return len(self._owners)

    # --- public API ---------------------------------------------------------------------------------------

    async def recognize(self, owner: str, tasks: list[VLMTask], *, background: bool = False) -> list[str]:
        """The VLM's text for each task, in order. Raises the first failure of any of `owner`'s calls.
        `background`: the owner's calls wait while an interactive owner has calls waiting."""
        if self._closed:
            raise VLMUnavailableError("the VLM client is closed")
        if not tasks:
            return []
        batch = _Batch(owner, [None] * len(tasks), asyncio.get_running_loop().create_future(), len(tasks))
        state = self._owners.get(owner)
        if state is None:
            state = self._owners[owner] = _Owner(owner, background=background)
        state.batches.add(batch)
        was_idle = not state.queue
        state.queue.extend(_Job(batch, i, t) for i, t in enumerate(tasks))
        if was_idle:
            self._list(state)
        self._dispatch()
        try:
            return await batch.done
        finally:
            self._abandon(state, batch)

    def cancel(self, owner: str) -> None:
        """Drop `owner`'s queued calls and cancel those in flight; its `recognize` calls raise 499."""
        state = self._owners.get(owner)
        if state is not None:
            self._fail(state, CancelledRequestError(f"request {owner} was cancelled"))

    async def aclose(self) -> None:
        """Fail all pending work (503) and wait for the calls in flight to end."""
        self._closed = True
        for state in list(self._owners.values()):
            self._fail(state, VLMUnavailableError("the VLM client was closed"))
        running = [t for s in self._owners.values() for t in s.running]
        if running:
            await asyncio.wait(running)

    # --- scheduling ---------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start queued calls while slots are free, from the first owner of the first ring with one; an owner
        at its cap waits aside until one of its calls finishes."""
        while self._in_flight < self.max_concurrency and any(self._rings):
            state = next(ring for ring in self._rings if ring).popleft()
            job = state.queue.popleft()
            state.served = True
            self._in_flight += 1
            task = asyncio.ensure_future(self._call(job.task))
            state.running[task] = job
            task.add_done_callback(functools.partial(self._finished, state))
            if state.queue:
                self._list(state)

    def _finished(self, state: _Owner, task: asyncio.Task[str]) -> None:
        """Release the slot, hand the text to its batch or fail the owner, and start what waits."""
        self._in_flight -= 1
        job = state.running.pop(task)
        if state in self._capped:
            self._capped.discard(state)
            self._list(state)
        exc = None if task.cancelled() else task.exception()   # always read, so asyncio never warns
        if job.batch.done.done():
            pass                            # its recognize is over (failed, cancelled): the outcome is moot
        elif task.cancelled():              # cancelled by someone else (e.g. loop shutdown): never hang
            self._fail(state, CancelledRequestError(f"a VLM call of request {state.name} was cancelled"))
        elif exc is not None:
            self.failures_total += 1
            self._fail(state, exc)
        else:
            job.batch.finish(job.index, task.result())
        self._forget_if_idle(state)
        self._dispatch()

    def _fail(self, state: _Owner, exc: BaseException) -> None:
        """Fail every open `recognize` of the owner with `exc` and stop all of its work."""
        for batch in state.batches:
            if not batch.done.done():
                batch.done.set_exception(exc)
        state.queue.clear()
        self._unlist(state)
        for task in state.running:
            task.cancel()

    def _abandon(self, state: _Owner, batch: _Batch) -> None:
        """A `recognize` call is over: drop what is left of its work."""
        state.batches.discard(batch)
        if any(job.batch is batch for job in state.queue):
            state.queue = deque(job for job in state.queue if job.batch is not batch)
            if not state.queue:
                self._unlist(state)
        for task, job in state.running.items():
            if job.batch is batch:
                task.cancel()
        self._forget_if_idle(state)

    def _list(self, state: _Owner) -> None:
        """Line up an owner with waiting calls for a slot: at the back of its ring, or aside at its cap."""
        if len(state.running) >= self.max_per_owner:
            self._capped.add(state)
        else:
            self._rings[2 * state.background + state.served].append(state)

    def _unlist(self, state: _Owner) -> None:
        self._capped.discard(state)
        for ring in self._rings:
            if state in ring:
                ring.remove(state)

    def _forget_if_idle(self, state: _Owner) -> None:
        if not (state.queue or state.running or state.batches) and self._owners.get(state.name) is state:
            del self._owners[state.name]
