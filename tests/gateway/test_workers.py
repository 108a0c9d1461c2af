"""Several uvicorn workers: the admission totals, the rate limit and the metrics are the gateway's, not each
worker's; a killed worker's slots come back; every connection has TCP_NODELAY."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psutil
import pytest

from .conftest import Events, Gateway, layout_body, new_id
from .test_admission import overlaps

RATE = 10


@pytest.fixture(scope="module")
def two_workers(start_gateway: Any, vlm: Any) -> Gateway:
    gateway: Gateway = start_gateway(
        UVICORN_WORKERS="2", HPS_VLM_URL=vlm.url, HPS_MAX_CONCURRENT_REQUESTS="2",
        HPS_MAX_QUEUED_REQUESTS="16", HPS_MAX_QUEUE_WAIT="20", HPS_RATE_LIMIT=f"{RATE}/minute",
        HPS_TRUSTED_PROXIES="127.0.0.1")
    deadline = time.monotonic() + 20
    while gateway.log().count("Application startup complete") < 2:  # both workers serving
        assert time.monotonic() < deadline, gateway.log()
        time.sleep(0.1)
    return gateway


def test_every_worker_counts_the_gateways_totals(two_workers: Gateway) -> None:
    told = re.findall(r"worker \d+: (\d+) inference .* shared by the gateway's workers", two_workers.log())
    assert told == ["2", "2"]
    assert two_workers.metric("gateway_concurrency_slots", pool="inference") == 2  # the gateway's total


async def test_the_concurrency_total_holds_across_workers(two_workers: Gateway, events: Events) -> None:
    ids = [new_id() for _ in range(6)]
    client_ip = {"x-forwarded-for": "192.0.2.1"}
    # A fresh connection per request, so that both workers get some.
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        url = f"{two_workers.url}/layout-parsing"
        answers = await asyncio.gather(*[client.post(url, json=layout_body(i, sleep=0.6), headers=client_ip)
                                         for i in ids])
    assert [a.status_code for a in answers] == [200] * 6
    pids = {e["pid"] for e in events.all() if e["logId"] in ids}
    assert len(pids) == 1  # the one Triton model instance saw them all
    assert overlaps(events, ids) <= 2
    assert two_workers.metric("gateway_requests_total", route="/layout-parsing", status="200") >= 6


def test_the_rate_limit_is_shared_by_the_workers(two_workers: Gateway) -> None:
    client_ip = {"x-forwarded-for": "192.0.2.99"}
    statuses = []
    for _ in range(RATE + 3):
        with httpx.Client() as client:  # new connections: the kernel spreads them over both workers
            url = f"{two_workers.url}/layout-parsing"
            statuses.append(client.post(url, json={"fileType": 9}, headers=client_ip).status_code)
    assert statuses == [422] * RATE + [429] * 3


def test_metrics_add_up_every_worker(two_workers: Gateway) -> None:
    before = two_workers.metric("gateway_requests_total", route="/health", status="200")
    for _ in range(10):
        with httpx.Client() as client:
            assert client.get(f"{two_workers.url}/health").status_code == 200
    after = two_workers.metric("gateway_requests_total", route="/health", status="200")
    assert after - before == 10


async def test_sigterm_drains_both_workers(two_workers: Gateway, events: Events) -> None:
    log_id = new_id()
    async with httpx.AsyncClient(timeout=30) as client:
        call = asyncio.ensure_future(client.post(
            f"{two_workers.url}/layout-parsing", json=layout_body(log_id, sleep=1.5),
            headers={"x-forwarded-for": "192.0.2.2"}))
        assert await asyncio.to_thread(events.wait_for, log_id, "start")
        two_workers.sigterm()
        answer = await call
    assert answer.status_code == 200
    await asyncio.to_thread(two_workers.proc.wait, 15)
    assert two_workers.log().count("SIGTERM: draining") == 2


# --- global admission over four workers -------------------------------------------------------------------


def worker_pids(gateway: Gateway) -> list[int]:
    """The uvicorn workers of a gateway (multiprocessing children; not its resource tracker)."""
    children = psutil.Process(gateway.proc.pid).children()
    return [c.pid for c in children if "spawn_main" in " ".join(c.cmdline())]


def four_workers_up(start_gateway: Any, vlm: Any, **env: str) -> Gateway:
    gateway: Gateway = start_gateway(UVICORN_WORKERS="4", HPS_VLM_URL=vlm.url, **env)
    deadline = time.monotonic() + 30
    while gateway.log().count("Application startup complete") < 4 or len(worker_pids(gateway)) < 4:
        assert time.monotonic() < deadline, gateway.log()
        time.sleep(0.1)
    return gateway


@contextmanager
def only_one_worker_accepting(gateway: Gateway) -> Iterator[int]:
    """SIGSTOP every worker but one, so the kernel hands that one every connection (the most uneven spread
    there can be); yields its pid, and lets the others go on afterwards."""
    first, *others = worker_pids(gateway)
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield first
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)


async def send_at_once(gateway: Gateway, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """Every body on its own new connection, all opened together."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        url = f"{gateway.url}/layout-parsing"
        return await asyncio.gather(*[client.post(url, json=body) for body in bodies])


@pytest.fixture(scope="module")
def roomy(start_gateway: Any, vlm: Any) -> Gateway:
    """The default totals (16 slots, 64 queued) over four workers."""
    return four_workers_up(start_gateway, vlm, HPS_MAX_QUEUE_WAIT="60")


@pytest.mark.parametrize("spread", ["as the kernel likes", "all on one worker"])
async def test_64_connections_within_the_totals_get_no_503(roomy: Gateway, spread: str) -> None:
    bodies = [layout_body(new_id(), sleep=0.5) for _ in range(64)]
    if spread == "all on one worker":
        with only_one_worker_accepting(roomy):
            answers = await send_at_once(roomy, bodies)
    else:
        answers = await send_at_once(roomy, bodies)
    assert Counter(a.status_code for a in answers) == {200: 64}
    assert roomy.slots_free()


async def test_over_the_totals_exactly_the_surplus_gets_503_with_retry_after(start_gateway: Any,
                                                                              vlm: Any) -> None:
    gateway = four_workers_up(start_gateway, vlm, HPS_MAX_CONCURRENT_REQUESTS="4",
                              HPS_MAX_QUEUED_REQUESTS="4", HPS_MAX_QUEUE_WAIT="30")
    answers = await send_at_once(gateway, [layout_body(new_id(), sleep=2) for _ in range(12)])
    refused = [a for a in answers if a.status_code == 503]
    assert Counter(a.status_code for a in answers) == {200: 8, 503: 4}
    assert all("queue full" in a.json()["errorMsg"] and int(a.headers["retry-after"]) >= 1 for a in refused)


async def test_a_killed_workers_slots_come_back(start_gateway: Any, vlm: Any, events: Events) -> None:
    gateway = four_workers_up(start_gateway, vlm, HPS_MAX_CONCURRENT_REQUESTS="4",
                              HPS_MAX_QUEUED_REQUESTS="16", HPS_MAX_QUEUE_WAIT="30")
    held = [new_id() for _ in range(4)]
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        url = f"{gateway.url}/layout-parsing"
        with only_one_worker_accepting(gateway) as holder:
            calls = [asyncio.ensure_future(client.post(url, json=layout_body(i, sleep=60))) for i in held]
            for log_id in held:   # the one worker holds all four slots
                assert await asyncio.to_thread(events.wait_for, log_id, "start", 10)
        os.kill(holder, signal.SIGKILL)
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(o, httpx.HTTPError) for o in outcomes)
        later = [new_id() for _ in range(4)]
        started = time.monotonic()
        answers = await asyncio.gather(*[client.post(url, json=layout_body(i, sleep=0.5)) for i in later])
        took = time.monotonic() - started
    assert [a.status_code for a in answers] == [200] * 4
    assert overlaps(events, later) == 4      # all four slots are free again, none counted twice
    assert took < 10, f"the dead worker's slots came back only after {took:.1f} s"


# --- TCP_NODELAY ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_reused_connection_adds_no_delayed_ack_wait(start_gateway: Any, vlm: Any, loop: str) -> None:
    """Four workers, as Compose runs the gateway: on one keep-alive connection, request after request is
    answered at once. Without TCP_NODELAY the second write of each answer (its body) waits for the client's
    delayed ACK, some 40 ms."""
    gateway = four_workers_up(start_gateway, vlm, HPS_GATEWAY_LOOP=loop)
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        client.get("/health")
        took = []
        for _ in range(20):
            started = time.perf_counter()
            assert client.post("/layout-parsing", json=layout_body(new_id())).status_code == 200
            took.append(time.perf_counter() - started)
    assert statistics.median(took) < 0.03, [f"{t * 1000:.0f} ms" for t in took]
