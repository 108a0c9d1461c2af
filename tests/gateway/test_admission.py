"""Concurrency slots, the bounded queue and Retry-After: the Pool itself, then a gateway with two slots."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gateway.admission import LocalPool, Pool
from gateway.errors import Overloaded, UpstreamTimeout
from gateway.shared_admission import Board, SharedPool

from .conftest import Events, Gateway, layout_body, new_id

MakePool = Callable[..., Pool]

# --- the pools, in process: each test runs on the in-memory pool and on the shared one ----------------------


@pytest.fixture(params=["local", "shared"])
def make_pool(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[MakePool]:
    """Pools of one kind: `LocalPool`, or `SharedPool` on a board in a fresh directory (as one worker)."""
    boards: list[Board] = []

    def make(name: str, **sizes: Any) -> Pool:
        if request.param == "local":
            return LocalPool(name, **sizes)
        if not boards:
            boards.append(Board(tmp_path))
        return SharedPool(name, board=boards[0], **sizes)

    yield make
    for board in boards:
        board.close()


def far() -> float:
    return time.monotonic() + 60


async def occupy(pool: Pool, release: asyncio.Event) -> None:
    """Hold a slot of `pool` (waiting in its queue first if need be) until `release` is set."""
    async with pool.slot(far()):
        await release.wait()


async def test_slots_are_granted_in_arrival_order_and_given_back(make_pool: MakePool) -> None:
    pool = make_pool("t-order", slots=1, queue_size=5, max_wait=5)
    order: list[int] = []

    async def job(i: int) -> None:
        async with pool.slot(far()):
            order.append(i)
            await asyncio.sleep(0.01)

    await asyncio.gather(*[job(i) for i in range(5)])
    assert order == [0, 1, 2, 3, 4]
    assert pool.active == 0 and pool.queued == 0


async def test_a_full_queue_refuses_at_once_with_a_measured_retry_after(make_pool: MakePool) -> None:
    pool = make_pool("t-full", slots=2, queue_size=1, max_wait=5)
    for _ in range(4):  # history: 0.3 s per request
        async with pool.slot(far()):
            await asyncio.sleep(0.3)
    release = asyncio.Event()

    holders = [asyncio.ensure_future(occupy(pool, release)) for _ in range(3)]  # two slots + one queued
    await asyncio.sleep(0.05)
    with pytest.raises(Overloaded) as refused:
        async with pool.slot(far()):
            pass
    measured = pool.service_time()
    assert 0.3 <= measured < 0.6  # the mean of the four requests above
    # Second in line behind two slots: one round, rounded up to whole seconds.
    assert refused.value.headers["Retry-After"] == str(math.ceil(measured))
    assert pool.retry_after(position=8) == math.ceil(measured * 4)  # four rounds of two slots
    assert pool.retry_after(position=20) == math.ceil(measured * 10)
    release.set()
    await asyncio.gather(*holders)
    assert pool.active == 0 and pool.queued == 0


async def test_retry_after_follows_the_measured_service_time(make_pool: MakePool) -> None:
    slow = make_pool("t-slow", slots=1, queue_size=0, max_wait=1)
    assert slow.retry_after(position=1) == 1  # nothing measured, nothing in service: the floor
    async with slow.slot(far()):
        await asyncio.sleep(1.2)
        assert slow.retry_after(position=1) >= 1  # meanwhile: the age of the request in service
    measured = slow.service_time()
    assert 1.2 <= measured < 1.6
    assert slow.retry_after(position=1) == math.ceil(measured) >= 2
    assert slow.retry_after(position=3) == math.ceil(measured * 3) >= 4


async def test_a_queue_wait_past_its_bound_is_refused_and_leaves_the_queue(make_pool: MakePool) -> None:
    pool = make_pool("t-wait", slots=1, queue_size=3, max_wait=0.2)
    release = asyncio.Event()

    holder = asyncio.ensure_future(occupy(pool, release))
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded):
        async with pool.slot(far()):
            pass
    assert pool.queued == 0
    release.set()
    await holder
    assert pool.active == 0


async def test_a_waiter_given_its_own_bound_outwaits_the_pools(make_pool: MakePool) -> None:
    """A job's runner waits in line past the pool's bound (for as long as it names) and keeps its place."""
    pool = make_pool("t-patient", slots=1, queue_size=3, max_wait=0.1)
    release = asyncio.Event()
    holder = asyncio.ensure_future(occupy(pool, release))
    await asyncio.sleep(0.01)

    async def patient() -> float:
        async with pool.slot(far(), max_wait=30):
            return time.monotonic()

    waiting = asyncio.ensure_future(patient())
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded):                      # one with the pool's bound gives up meanwhile
        async with pool.slot(far()):
            pass
    await asyncio.sleep(0.3)                             # three times the pool's bound
    assert not waiting.done() and pool.queued == 1
    released = time.monotonic()
    release.set()
    assert await waiting >= released
    await holder
    assert pool.active == 0


async def test_a_request_deadline_inside_the_queue_is_a_timeout(make_pool: MakePool) -> None:
    pool = make_pool("t-deadline", slots=1, queue_size=3, max_wait=10)
    release = asyncio.Event()

    holder = asyncio.ensure_future(occupy(pool, release))
    await asyncio.sleep(0.01)
    with pytest.raises(UpstreamTimeout):
        async with pool.slot(time.monotonic() + 0.1):
            pass
    release.set()
    await holder


async def test_cancelled_waiters_and_holders_give_their_slots_back(make_pool: MakePool) -> None:
    pool = make_pool("t-cancel", slots=1, queue_size=5, max_wait=10)

    async def hold(seconds: float) -> None:
        async with pool.slot(far()):
            await asyncio.sleep(seconds)

    first = asyncio.ensure_future(hold(10))
    waiters = [asyncio.ensure_future(hold(10)) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert pool.active == 1 and pool.queued == 3
    waiters[1].cancel()
    await asyncio.gather(waiters[1], return_exceptions=True)
    assert pool.queued == 2
    for task in [first, *waiters]:
        task.cancel()
    await asyncio.gather(first, *waiters, return_exceptions=True)
    assert pool.active == 0 and pool.queued == 0
    async with pool.slot(far()):  # and the slot is usable
        assert pool.active == 1


async def test_a_slot_handed_over_as_its_waiter_is_cancelled_goes_to_the_next(make_pool: MakePool) -> None:
    pool = make_pool("t-race", slots=1, queue_size=5, max_wait=10)
    release = asyncio.Event()

    holder = asyncio.ensure_future(occupy(pool, release))
    await asyncio.sleep(0)
    racer = asyncio.ensure_future(occupy(pool, release))
    third = asyncio.ensure_future(occupy(pool, release))
    await asyncio.sleep(0)
    release.set()
    await holder  # hands the slot to `racer`'s future ...
    racer.cancel()  # ... which is cancelled before it runs
    await asyncio.gather(racer, return_exceptions=True)
    await asyncio.wait_for(third, 1)  # the slot went on to the third
    assert pool.active == 0 and pool.queued == 0


# --- a real gateway with two inference slots and one queue place ------------------------------------------


@pytest.fixture(scope="module")
def tight(start_gateway: Any, vlm: Any) -> Gateway:
    return start_gateway(  # type: ignore[no-any-return]
        HPS_VLM_URL=vlm.url, HPS_MAX_CONCURRENT_REQUESTS="2", HPS_MAX_CONCURRENT_NON_INFERENCE_REQUESTS="1",
        HPS_MAX_QUEUED_REQUESTS="1", HPS_MAX_QUEUE_WAIT="1", HPS_INFERENCE_TIMEOUT="20")


def eventually(condition: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def overlaps(events: Events, ids: list[str]) -> int:
    """Most of `ids` running in Triton at the same moment."""
    marks = []
    for event in events.all():
        if event["logId"] in ids and event["event"] in ("start", "finish", "cancelled"):
            marks.append((event["t"], 1 if event["event"] == "start" else -1))
    running = most = 0
    for _, step in sorted(marks):
        running += step
        most = max(most, running)
    return most


async def test_over_the_limit_requests_queue_then_get_503_with_retry_after(tight: Gateway,
                                                                           events: Events) -> None:
    url = f"{tight.url}/layout-parsing"
    async with httpx.AsyncClient(timeout=30) as client:
        # History: two requests of 1.5 s each.
        warm = await asyncio.gather(*[client.post(url, json=layout_body(new_id(), sleep=1.5))
                                      for _ in range(2)])
        assert [r.status_code for r in warm] == [200, 200]
        ids = [new_id() for _ in range(4)]

        def send(log_id: str) -> asyncio.Future[httpx.Response]:
            return asyncio.ensure_future(client.post(url, json=layout_body(log_id, sleep=1.5)))

        calls = [send(ids[0]), send(ids[1])]  # these two take the slots ...
        for log_id in ids[:2]:
            assert await asyncio.to_thread(events.wait_for, log_id, "start")
        calls.append(send(ids[2]))  # ... this one queues ...
        assert await asyncio.to_thread(eventually, lambda: tight.metric("gateway_requests_queued") >= 1)
        calls.append(send(ids[3]))  # ... and this one finds the queue full
        answers = await asyncio.gather(*calls)
    status = {log_id: r.status_code for log_id, r in zip(ids, answers, strict=True)}
    assert sorted(status.values()) == [200, 200, 503, 503], status
    full, waited = answers[3], answers[2]
    assert "queue full" in full.json()["errorMsg"] and full.elapsed.total_seconds() < 1
    assert "no free slot" in waited.json()["errorMsg"] and waited.elapsed.total_seconds() >= 0.9
    # Measured: ~1.5 s per request, one round of two slots ahead -> 2 s (not a constant 1); a loaded
    # machine may stretch the history a little.
    assert 2 <= int(full.headers["retry-after"]) <= 3 and 2 <= int(waited.headers["retry-after"]) <= 3
    assert events.of(ids[2]) == [] and events.of(ids[3]) == []  # refused requests never reached Triton
    assert overlaps(events, ids) == 2
    assert tight.metric("gateway_rejections_total", reason="queue_full") >= 1
    assert tight.metric("gateway_rejections_total", reason="queue_timeout") >= 1


async def test_a_queued_request_gets_the_slot_when_one_frees(tight: Gateway) -> None:
    url = f"{tight.url}/layout-parsing"
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*[client.post(url, json=layout_body(new_id(), sleep=0.4))
                                         for _ in range(3)])
    assert [r.status_code for r in answers] == [200, 200, 200]


async def test_slots_come_back_after_errors_timeouts_and_disconnects(tight: Gateway, events: Events) -> None:
    url = f"{tight.url}/layout-parsing"
    async with httpx.AsyncClient(timeout=30) as client:
        failures = [layout_body(new_id(), **{"raise": "x"}), layout_body(new_id(), garbage=True),
                    layout_body(new_id(), error=500), layout_body(new_id(), sleep=5) | {"fileType": 9}]
        for body in failures:
            assert (await client.post(url, json=body)).status_code >= 400
        gone = new_id()
        call = asyncio.ensure_future(client.post(url, json=layout_body(gone, sleep=10)))
        assert await asyncio.to_thread(events.wait_for, gone, "start")
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
    assert await asyncio.to_thread(events.wait_for, gone, "cancelled")
    await asyncio.sleep(0.2)
    assert tight.metric("gateway_requests_in_flight", pool="inference") == 0
    assert tight.metric("gateway_requests_queued", pool="inference") == 0
    ids = [new_id(), new_id()]
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*[client.post(url, json=layout_body(i, sleep=0.5)) for i in ids])
    assert [r.status_code for r in answers] == [200, 200]
    assert overlaps(events, ids) == 2  # both slots free again


async def test_the_non_inference_route_has_its_own_slots(tight: Gateway) -> None:
    url = f"{tight.url}/restructure-pages"
    body = {"pages": [{"prunedResult": {}}], "_gatewayTest": {"sleep": 1.5}}
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*[client.post(url, json=body) for _ in range(3)])
    # One slot, one queue place waiting at most 1 s: one served, two refused.
    assert sorted(r.status_code for r in answers) == [200, 503, 503]


def test_a_large_body_goes_through_whole(tight: Gateway) -> None:
    """Bodies and outputs over 1 MiB are parsed off the event loop; nothing is lost on the way."""
    document = "QUJD" * (3 * 1024 * 1024 // 4)
    response = httpx.post(f"{tight.url}/layout-parsing", json={"file": document, "fileType": 0}, timeout=60)
    assert response.status_code == 200
    assert response.json()["result"]["echo"]["body"]["file"] == document
