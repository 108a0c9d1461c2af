"""Shared layout batches with fair turns: pages of every request in flight go through the detector together.

The detector is fastest on batches, but a 30-page document queued first must not make a 1-page request wait
for all 30 pages. Pages wait in one queue per request; a batch takes them one at a time from the request
served longest ago, a request never served going first. So a newcomer's page rides in the very next batch,
even when the long document's next page arrived before it. A request's turn is remembered from page to page
until its caller calls `forget`: were it dropped whenever the request had no page waiting (between one page
and the next), the long document would count as new again and go first.
A request may be background work (a page of an asynchronous job): its pages go into a batch only when no
interactive request has a page waiting, so that a long job never slows an interactive request down by more
than the batch already running. Detection runs in a worker thread, one batch at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque

import numpy as np

from docengine.layout.base import Detector
from docengine.types import Detection

log = logging.getLogger(__name__)

_Item = tuple[np.ndarray, "asyncio.Future[list[Detection]]"]


class LayoutScheduler:
    def __init__(self, detector: Detector, batch_size: int) -> None:
        self._detector = detector
        self._batch_size = batch_size
        self._queues: dict[str, deque[_Item]] = {}    # owners with pages waiting, in order of arrival
        self._last_turn: dict[str, int] = {}          # owner -> when a page of it last went into a batch
        self._background: set[str] = set()            # owners whose pages wait for interactive ones
        self._turns = itertools.count()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batches_run = 0       # exported as metrics (docengine.serving)
        self.pages_detected = 0

    async def detect(self, owner: str, page: np.ndarray, *, background: bool = False) -> list[Detection]:
        """Detections of one page; `owner` groups the pages of one request for the turns, and `background`
        puts them behind every interactive request's."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._run())
        future: asyncio.Future[list[Detection]] = loop.create_future()
        self._queues.setdefault(owner, deque()).append((page, future))
        if background:
            self._background.add(owner)
        assert self._wakeup is not None
        self._wakeup.set()
        return await future  # cancelling this leaves a cancelled future, which the worker skips

    def forget(self, owner: str) -> None:
        """The owner has no more pages to send: drop its turn (a later page of it would count as new)."""
        self._last_turn.pop(owner, None)
        self._background.discard(owner)

    async def aclose(self) -> None:
        """Stop the worker; pages still waiting fail with CancelledError."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for queue in self._queues.values():
            for _, future in queue:
                future.cancel()
        self._queues.clear()
        self._last_turn.clear()
        self._background.clear()

    def pending(self) -> int:
        return sum(1 for q in self._queues.values() for _, f in q if not f.done())

    def _next_batch(self) -> list[_Item]:
        """Up to `batch_size` pages, each from the owner whose turn came longest ago (never: first), among the
        interactive owners with pages waiting if there are any."""
        batch: list[_Item] = []
        while len(batch) < self._batch_size:
            for queue in self._queues.values():
                while queue and queue[0][1].done():   # cancelled while waiting
                    queue.popleft()
            self._queues = {owner: queue for owner, queue in self._queues.items() if queue}
            if not self._queues:
                break
            interactive = [o for o in self._queues if o not in self._background]
            owner = min(interactive or self._queues, key=lambda o: self._last_turn.get(o, -1))
            batch.append(self._queues[owner].popleft())
            self._last_turn[owner] = next(self._turns)
        return batch

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while batch := self._next_batch():
                await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Item]) -> None:
        """A method of its own so that the batch's page images are let go as soon as it is done, not kept
        by the worker while it waits for the next one."""
        pages = [page for page, _ in batch]
        self.batches_run += 1
        self.pages_detected += len(batch)
        try:
            results = await asyncio.to_thread(self._detector.detect, pages)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # the detector failed: every page of this batch fails with it
            log.exception("layout detection failed on a batch of %d pages", len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), dets in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(dets)
