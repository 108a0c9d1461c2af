"""Recycling: a worker past its request count or its memory ceiling restarts itself, and no request fails.

Each request goes on a connection of its own: a worker that stops closes its idle keep-alive connections, as
any server restart does, and a client must then reconnect; what is promised is that no request a worker has
taken is refused or lost.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from gateway.recycle import Recycler

from .conftest import Gateway, layout_body, new_id

pytestmark = pytest.mark.slow


def started_workers(gateway: Gateway) -> set[str]:
    return set(re.findall(r"worker (\d+): \d+ inference and", gateway.log()))


async def traffic(gateway: Gateway, requests: int, clients: int, sleep: float) -> list[int]:
    """`requests` requests of `sleep` s each, `clients` at a time, each on a new connection."""
    todo = iter(range(requests))
    statuses: list[int] = []

    async def client() -> None:
        for _ in todo:
            async with httpx.AsyncClient(timeout=60) as http:
                response = await http.post(f"{gateway.url}/layout-parsing",
                                           json=layout_body(new_id(), sleep=sleep))
            statuses.append(response.status_code)

    await asyncio.gather(*(client() for _ in range(clients)))
    return statuses


async def test_workers_past_their_request_count_restart_and_no_request_fails(start_gateway: Any,
                                                                              vlm: Any) -> None:
    gateway = start_gateway(HPS_VLM_URL=vlm.url, UVICORN_WORKERS="2", HPS_WORKER_MAX_REQUESTS="6")
    statuses = await traffic(gateway, requests=48, clients=4, sleep=0.3)
    assert statuses == [200] * 48
    assert gateway.log().count("recycling (") >= 3
    assert len(started_workers(gateway)) >= 4   # the two first workers and those that took over


async def test_a_worker_past_its_memory_ceiling_restarts_and_no_request_fails(start_gateway: Any,
                                                                               vlm: Any) -> None:
    gateway = start_gateway(HPS_VLM_URL=vlm.url, UVICORN_WORKERS="2", HPS_WORKER_MAX_MEMORY_MB="1")
    statuses = await traffic(gateway, requests=40, clients=3, sleep=0.5)   # about ten seconds of work
    assert statuses == [200] * 40
    assert "MiB resident, over the ceiling of 1 MiB" in gateway.log()
    assert len(started_workers(gateway)) >= 3


async def test_the_request_limit_has_up_to_a_tenth_of_jitter_and_fires_once() -> None:
    restarts: list[int] = []

    async def restart() -> None:
        restarts.append(1)

    limits = {Recycler(max_requests=100, max_memory_mb=0, restart=restart).max_requests for _ in range(200)}
    assert min(limits) >= 100 and max(limits) <= 110 and len(limits) > 1
    recycler = Recycler(max_requests=3, max_memory_mb=0, restart=restart)
    for _ in range(10):
        recycler.answered_one()
    await asyncio.sleep(0)
    assert restarts == [1]
