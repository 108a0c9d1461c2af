"""The VLM client's fair dispatch against a mocked server: fairness between requests, the bounds, and what a
failure or a cancellation stops."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from docengine.errors import CancelledRequestError, VLMBadResponseError, VLMUnavailableError
from docengine.recognition.client import VLMClient
from tests.engine.mock_vlm import (
    MODEL,
    URL_A,
    Gate,
    Gauge,
    assert_idle,
    completion,
    echo,
    prompt_of,
    settle,
    task,
    until,
)

# --- fairness and bounds ------------------------------------------------------------------------------------


async def test_late_small_request_is_not_starved_by_a_large_one(router, make_client):
    arrivals: list[str] = []
    gauge = Gauge(0.02)

    async def handler(request: httpx.Request) -> httpx.Response:
        arrivals.append(prompt_of(request))
        return await gauge(request)
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=handler)
    client = make_client(max_concurrency=2)

    big = asyncio.create_task(client.recognize("A", [task(f"A{i}") for i in range(20)]))
    await until(lambda: len(arrivals) >= 2)
    assert client.queued("A") == 18 and client.in_flight == 2
    small = await client.recognize("B", [task("B0")])
    assert small == ["B0"]
    assert arrivals.index("B0") <= 3   # the next free slot (a FIFO semaphore would make it 20th)
    assert not big.done()
    assert await big == [f"A{i}" for i in range(20)]
    assert gauge.peak == 2
    assert_idle(client)


async def test_owners_are_served_round_robin(router, make_client):
    arrivals: list[str] = []
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=echo(0.001, arrivals))
    client = make_client(max_concurrency=1)
    a = asyncio.create_task(client.recognize("A", [task(f"A{i}") for i in range(3)]))
    b = asyncio.create_task(client.recognize("B", [task(f"B{i}") for i in range(3)]))
    await asyncio.gather(a, b)
    assert arrivals == ["A0", "B0", "A1", "B1", "A2", "B2"]


async def test_one_bound_for_all_owners(router, make_client):
    gauge = Gauge(0.005)
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=gauge)
    client = make_client(max_concurrency=3)
    results = await asyncio.gather(*(client.recognize(f"o{k}", [task(f"{k}.{i}") for i in range(6)])
                                     for k in range(5)))
    assert results == [[f"{k}.{i}" for i in range(6)] for k in range(5)]
    assert gauge.peak == 3
    assert_idle(client)


async def test_one_request_holds_at_most_its_share_and_a_newcomer_starts_at_once(router, make_client):
    gate = Gate()
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=gate)
    client = make_client(max_concurrency=4, request_share=0.5)
    assert client.max_per_owner == 2

    big = asyncio.create_task(client.recognize("A", [task(f"A{i}") for i in range(6)]))
    await until(lambda: len(gate.started) == 2)
    await settle()
    assert (client.in_flight, client.queued("A")) == (2, 4)   # two slots stay free
    small = asyncio.create_task(client.recognize("B", [task(f"B{i}") for i in range(3)]))
    await until(lambda: len(gate.started) == 4)
    await settle()
    # B's first two calls start without waiting for any of A's (in either order: each encodes its crop in a
    # worker thread before it reaches the server)
    assert sorted(gate.started[2:]) == ["B0", "B1"]
    assert (client.in_flight, client.queued("A"), client.queued("B")) == (4, 4, 1)
    gate.open.set()
    assert await small == ["B0", "B1", "B2"]
    assert await big == [f"A{i}" for i in range(6)]
    assert_idle(client)


async def test_a_request_alone_keeps_its_share_busy(router, make_client):
    gauge = Gauge(0.005)
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=gauge)
    client = make_client(max_concurrency=8, request_share=0.75)
    assert await client.recognize("A", [task(f"A{i}") for i in range(30)]) == [f"A{i}" for i in range(30)]
    assert gauge.peak == 6
    assert_idle(client)


async def test_a_capped_request_can_be_cancelled(router, make_client):
    gate = Gate()
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=gate)
    client = make_client(max_concurrency=4, request_share=0.25)
    job = asyncio.create_task(client.recognize("A", [task(f"A{i}") for i in range(5)]))
    await until(lambda: len(gate.started) == 1)
    client.cancel("A")
    with pytest.raises(CancelledRequestError):
        await job
    await settle()
    assert gate.cancelled == ["A0"]
    assert_idle(client)
    gate.open.set()
    assert await client.recognize("B", [task("B0"), task("B1")]) == ["B0", "B1"]


@pytest.mark.parametrize("share", [0, -0.5, 1.5])
def test_request_share_out_of_range(share):
    with pytest.raises(ValueError, match="request_share"):
        VLMClient([URL_A], MODEL, request_share=share)


async def test_counters_show_queue_and_flight(router, make_client):
    gate = Gate()
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=gate)
    client = make_client(max_concurrency=1)
    job = asyncio.create_task(client.recognize("A", [task("1"), task("2"), task("3")]))
    await until(lambda: client.caller.outstanding()[URL_A] > 0)
    assert (client.in_flight, client.queued("A"), client.queued("nobody")) == (1, 2, 0)
    assert client.owners() == 1
    gate.open.set()
    assert await job == ["1", "2", "3"]
    assert_idle(client)


# --- failure and cancellation -------------------------------------------------------------------------------


async def test_failure_fails_the_owner_fast_and_spares_others(router, make_client):
    started: list[str] = []
    cancelled: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        prompt = prompt_of(request)
        started.append(prompt)
        if prompt == "A3":
            return httpx.Response(400, json={"message": "bad image"})
        try:
            await asyncio.sleep(2 if prompt.startswith("A") else 0.005)
        except asyncio.CancelledError:
            cancelled.append(prompt)
            raise
        return completion(prompt)
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=handler)
    client = make_client(max_concurrency=4)

    other = asyncio.create_task(client.recognize("B", [task(f"B{i}") for i in range(8)]))
    start = time.monotonic()
    with pytest.raises(VLMBadResponseError, match="bad image"):
        await client.recognize("A", [task(f"A{i}") for i in range(12)])
    assert time.monotonic() - start < 1              # did not wait for A's other calls
    assert client.queued("A") == 0
    assert await other == [f"B{i}" for i in range(8)]
    await settle()
    assert [p for p in cancelled if p.startswith("A")]   # A's calls in flight were cancelled
    assert len([p for p in started if p.startswith("A")]) < 12
    assert_idle(client)


async def test_failure_reaches_every_open_call_of_the_owner(router, make_client):
    async def handler(request: httpx.Request) -> httpx.Response:
        if prompt_of(request) == "bad":
            return httpx.Response(400, json={"message": "nope"})
        await asyncio.sleep(1)
        return completion("late")
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=handler)
    client = make_client()
    page1 = asyncio.create_task(client.recognize("A", [task("slow")]))
    page2 = asyncio.create_task(client.recognize("A", [task("bad")]))
    results = await asyncio.wait_for(asyncio.gather(page1, page2, return_exceptions=True), 0.5)
    assert all(isinstance(r, VLMBadResponseError) for r in results)
    await settle()
    assert_idle(client)


async def test_cancelled_recognize_drops_queued_work_and_frees_slots(router, make_client):
    gate = Gate()
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=gate)
    client = make_client(max_concurrency=2)

    job = asyncio.create_task(client.recognize("A", [task(f"A{i}") for i in range(10)]))
    await until(lambda: len(gate.started) >= 2)
    assert client.queued("A") == 8
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    await settle()
    assert sorted(gate.cancelled) == ["A0", "A1"]
    assert_idle(client)
    assert sorted(gate.started) == ["A0", "A1"]

    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=echo())
    assert await client.recognize("B", [task("B0"), task("B1")]) == ["text of B0", "text of B1"]


async def test_cancel_owner(router, make_client):
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=echo(delay=0.02))
    client = make_client(max_concurrency=2)
    a = asyncio.create_task(client.recognize("A", [task(f"A{i}") for i in range(6)]))
    b = asyncio.create_task(client.recognize("B", [task(f"B{i}") for i in range(3)]))
    await asyncio.sleep(0.005)
    client.cancel("A")
    client.cancel("nobody")
    with pytest.raises(CancelledRequestError) as info:
        await a
    assert info.value.status == 499
    assert await b == [f"text of B{i}" for i in range(3)]
    await settle()
    assert_idle(client)


async def test_aclose_fails_pending_work(router, make_client):
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=echo(delay=10))
    client = make_client(max_concurrency=1)
    job = asyncio.create_task(client.recognize("A", [task("1"), task("2")]))
    await asyncio.sleep(0.005)
    await client.aclose()
    with pytest.raises(VLMUnavailableError, match="closed"):
        await job
    with pytest.raises(VLMUnavailableError, match="closed"):
        await client.recognize("A", [task("3")])
    assert_idle(client)


async def test_background_calls_start_only_when_no_interactive_call_waits(router, make_client):
    """A job's calls fill the free slots, but as slots free up an interactive request's calls go first, even
    though the job's were queued earlier."""
    gate = Gate()
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=gate)
    client = make_client(max_concurrency=2)
    job = asyncio.create_task(client.recognize("job", [task(f"J{i}") for i in range(6)], background=True))
    await until(lambda: len(gate.started) == 2)
    interactive = asyncio.create_task(client.recognize("request", [task(f"R{i}") for i in range(3)]))
    await settle()
    assert client.queued("request") == 3 and client.queued("job") == 4
    gate.open.set()
    assert await interactive == ["R0", "R1", "R2"]
    assert await job == [f"J{i}" for i in range(6)]
    # R0, R1 and R2 take the next three slots that free up; J2 and J3 the two after them (each call encodes
    # its crop in a thread before it reaches the server, so only a job call two slots later is sure to
    # arrive after every interactive one)
    started = gate.started
    assert set(started[:2]) == {"J0", "J1"}
    assert max(started.index(f"R{i}") for i in range(3)) < started.index("J4")
    assert_idle(client)
