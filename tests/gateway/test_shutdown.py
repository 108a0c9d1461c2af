"""SIGTERM: readiness turns 503 at once, in-flight requests finish within the drain timeout, then exit."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from .conftest import Events, layout_body, new_id


async def test_sigterm_turns_unready_and_lets_in_flight_requests_finish(start_gateway: Any, vlm: Any,
                                                                         events: Events) -> None:
    gateway = start_gateway(HPS_VLM_URL=vlm.url, HPS_DRAIN_TIMEOUT="20")
    log_id = new_id()
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{gateway.url}/health/ready")).status_code == 200
        call = asyncio.ensure_future(client.post(f"{gateway.url}/layout-parsing",
                                                 json=layout_body(log_id, sleep=2)))
        assert await asyncio.to_thread(events.wait_for, log_id, "start")
        gateway.sigterm()
        await asyncio.sleep(0.3)
        ready = await client.get(f"{gateway.url}/health/ready")
        assert ready.status_code == 503 and "shutting down" in ready.json()["errorMsg"]
        refused = await client.post(f"{gateway.url}/layout-parsing", json=layout_body(new_id()))
        assert refused.status_code == 503 and refused.headers["connection"] == "close"
        assert (await client.get(f"{gateway.url}/health")).status_code == 200  # still alive meanwhile
        answer = await call
    assert answer.status_code == 200 and answer.json()["logId"] == log_id
    assert await asyncio.to_thread(gateway.proc.wait, 10) is not None


async def test_the_drain_is_bounded_and_what_is_left_is_cancelled(start_gateway: Any, vlm: Any,
                                                                  events: Events) -> None:
    gateway = start_gateway(HPS_VLM_URL=vlm.url, HPS_DRAIN_TIMEOUT="1")
    log_id = new_id()
    async with httpx.AsyncClient(timeout=30) as client:
        call = asyncio.ensure_future(client.post(f"{gateway.url}/layout-parsing",
                                                 json=layout_body(log_id, sleep=60)))
        assert await asyncio.to_thread(events.wait_for, log_id, "start")
        started = time.monotonic()
        gateway.sigterm()
        answer = await call
        await asyncio.to_thread(gateway.proc.wait, 20)
        took = time.monotonic() - started
    assert answer.status_code == 503 and answer.json()["logId"] == log_id
    assert "shut down before the request finished" in answer.json()["errorMsg"]
    assert took < 5  # the 1 s drain and a quick exit, not the 60 s of the request
    assert await asyncio.to_thread(events.wait_for, log_id, "cancelled")
