"""Two uvicorn workers: the concurrency total, the rate limit and the metrics are the gateway's, not each
worker's."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
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


def test_each_worker_takes_its_share(two_workers: Gateway) -> None:
    shares = re.findall(r"worker (\d) of 2: (\d+) inference", two_workers.log())
    assert sorted(shares) == [("1", "1"), ("2", "1")]
    assert two_workers.metric("gateway_concurrency_slots", pool="inference") == 2  # summed over workers


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
