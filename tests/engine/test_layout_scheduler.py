"""The shared layout batches: pages of all requests together, newcomers served in the next batch."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from docengine.layout.scheduler import LayoutScheduler
from docengine.types import Detection


class RecordingDetector:
    """Tags each page's detection with the page's marker pixel, and records every batch it was given."""

    def __init__(self, seconds_per_batch: float = 0.05) -> None:
        self.batches: list[list[int]] = []
        self.seconds = seconds_per_batch
        self.threads: set[str] = set()
        self.started = threading.Event()

    def detect(self, pages: list[np.ndarray]) -> list[list[Detection]]:
        self.started.set()
        self.threads.add(threading.current_thread().name)
        markers = [int(p[0, 0, 0]) for p in pages]
        self.batches.append(markers)
        time.sleep(self.seconds)
        return [[Detection(cls_id=22, score=1.0, box=(0, 0, 1, 1), order_key=float(m))] for m in markers]


def page(marker: int) -> np.ndarray:
    return np.full((4, 4, 3), marker, dtype=np.uint8)


async def test_each_page_gets_its_own_detections_and_batches_fill_up():
    detector = RecordingDetector()
    scheduler = LayoutScheduler(detector, batch_size=4)
    results = await asyncio.gather(*(scheduler.detect("doc", page(i)) for i in range(10)))
    assert [r[0].order_key for r in results] == [float(i) for i in range(10)]
    assert [len(b) for b in detector.batches] == [4, 4, 2]
    assert "MainThread" not in detector.threads  # the event loop stays free


async def test_a_late_small_request_rides_in_the_next_batch():
    detector = RecordingDetector(seconds_per_batch=0.05)
    scheduler = LayoutScheduler(detector, batch_size=4)
    big = [asyncio.ensure_future(scheduler.detect("big", page(i))) for i in range(1, 31)]
    await asyncio.sleep(0.01)  # the first batch of the big document is running
    small = await scheduler.detect("small", page(200))
    assert small[0].order_key == 200.0
    batch_of_small = next(i for i, b in enumerate(detector.batches) if 200 in b)
    assert batch_of_small == 1, detector.batches
    await asyncio.gather(*big)
    assert sum(len(b) for b in detector.batches) == 31


async def test_a_newcomer_goes_before_the_next_page_of_a_request_just_served():
    """The long document's next page arrives while its first is in the detector, before the newcomer's:
    the newcomer still goes next, as the long document had its turn."""
    detector = RecordingDetector(seconds_per_batch=0.05)
    scheduler = LayoutScheduler(detector, batch_size=1)
    first = asyncio.ensure_future(scheduler.detect("long", page(1)))
    await asyncio.sleep(0.01)          # page 1 is in the detector, the long document has no page waiting
    second = asyncio.ensure_future(scheduler.detect("long", page(2)))
    await asyncio.sleep(0)
    await scheduler.detect("short", page(200))
    await asyncio.gather(first, second)
    assert detector.batches == [[1], [200], [2]]


async def test_turns_alternate_and_a_forgotten_owner_counts_as_new():
    detector = RecordingDetector(seconds_per_batch=0.01)
    scheduler = LayoutScheduler(detector, batch_size=1)
    await scheduler.detect("a", page(1))
    await scheduler.detect("b", page(2))
    await scheduler.detect("a", page(3))    # a was served last
    blocker = asyncio.ensure_future(scheduler.detect("c", page(4)))
    await asyncio.sleep(0.005)
    waiting = [asyncio.ensure_future(scheduler.detect(o, page(m))) for o, m in (("a", 5), ("b", 6))]
    await asyncio.gather(blocker, *waiting)
    assert detector.batches[-2:] == [[6], [5]]      # b's turn came longer ago

    scheduler.forget("a")
    blocker = asyncio.ensure_future(scheduler.detect("c", page(7)))
    await asyncio.sleep(0.005)
    waiting = [asyncio.ensure_future(scheduler.detect(o, page(m))) for o, m in (("b", 8), ("a", 9))]
    await asyncio.gather(blocker, *waiting)
    assert detector.batches[-2:] == [[9], [8]]      # a is new again: first, though b queued first


async def test_cancelled_pages_are_skipped():
    detector = RecordingDetector(seconds_per_batch=0.05)
    scheduler = LayoutScheduler(detector, batch_size=2)
    first = asyncio.ensure_future(scheduler.detect("a", page(1)))
    doomed = [asyncio.ensure_future(scheduler.detect("b", page(50 + i))) for i in range(6)]
    await asyncio.sleep(0.01)
    for fut in doomed:
        fut.cancel()
    await first
    await asyncio.sleep(0.1)
    seen = [m for b in detector.batches for m in b]
    assert not [m for m in seen if m >= 50][2:], detector.batches  # at most the batch already running
    assert scheduler.pending() == 0


async def test_a_detector_failure_fails_that_batch_only():
    class Flaky(RecordingDetector):
        def detect(self, pages):
            if any(int(p[0, 0, 0]) == 13 for p in pages):
                raise RuntimeError("model exploded")
            return super().detect(pages)

    scheduler = LayoutScheduler(Flaky(0.0), batch_size=1)
    with pytest.raises(RuntimeError, match="exploded"):
        await scheduler.detect("x", page(13))
    assert (await scheduler.detect("y", page(7)))[0].order_key == 7.0


async def test_closing_stops_the_worker_and_fails_waiting_pages():
    scheduler = LayoutScheduler(RecordingDetector(0.2), batch_size=1)
    waiting = [asyncio.ensure_future(scheduler.detect("a", page(i))) for i in range(3)]
    await asyncio.sleep(0.05)
    await scheduler.aclose()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert scheduler.pending() == 0


async def test_background_pages_wait_while_an_interactive_request_has_pages_waiting():
    """A job's pages queued first still go after an interactive request's pages that arrive later, all of
    them: the job only delays the interactive request by the batch already in the detector."""
    detector = RecordingDetector(seconds_per_batch=0.02)
    scheduler = LayoutScheduler(detector, batch_size=2)
    job = [asyncio.ensure_future(scheduler.detect(f"job-p{i}", page(i), background=True))
           for i in range(1, 9)]
    assert await asyncio.to_thread(detector.started.wait, 5)   # the job's first batch is in the detector
    interactive = [asyncio.ensure_future(scheduler.detect("request", page(100 + i))) for i in range(3)]
    await asyncio.gather(*interactive, *job)
    order = [marker for batch in detector.batches for marker in batch]
    assert order[:2] == [1, 2]                                   # the batch that was running
    assert order[2:5] == [100, 101, 102]                         # then every interactive page
    assert sorted(order[5:]) == list(range(3, 9))
