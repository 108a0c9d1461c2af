"""Triton goes away and comes back: every worker says Not Ready and answers 503 while it is gone, and every
worker serves again within seconds of its return, however long the outage (gRPC's own reconnect delay grows
to two minutes; the gateway caps it at one second)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from localstack.triton import free_port, start_triton

from .conftest import MODELS, Gateway, layout_body
from .each_worker import each_worker, on_new_connections

pytestmark = pytest.mark.slow

# Long enough that gRPC's default delay (1 s growing 1.6 times per failure) would have passed 10 s, so that
# without the cap the first attempt after Triton's return would come more than 5 s late.
OUTAGE = 30
# Every worker serves by then (the 1 s cap, its 20 % jitter, a margin for a busy machine): within the 5 s.
BACK_BY = 3.0


def start(ports: dict[str, int], log: Path) -> Any:
    return start_triton(MODELS, log_path=log, http_port=ports["http"], grpc_port=ports["grpc"],
                        metrics_port=ports["metrics"])


def test_every_worker_is_not_ready_while_triton_is_gone_and_serves_soon_after_it_returns(
        start_gateway: Any, vlm: Any, tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("http", "grpc", "metrics")}
    triton = start(ports, tmp_path / "triton-1.log")
    try:
        gateway: Gateway = start_gateway(UVICORN_WORKERS="2", HPS_VLM_URL=vlm.url,
                                         HPS_TRITON_URL=f"127.0.0.1:{ports['grpc']}")
        ready, parse = f"{gateway.url}/health/ready", f"{gateway.url}/layout-parsing"
        served = each_worker(gateway.proc.pid, parse, 2, layout_body())
        assert len(served) == 2 and all(s == [200, 200] for s in served.values()), served
    finally:
        triton.stop()

    gone = time.monotonic()
    while time.monotonic() - gone < OUTAGE:
        # Every probe and request, on new connections to whichever worker, sees that Triton is gone.
        assert asyncio.run(on_new_connections(ready, 4)) == [503] * 4
        assert asyncio.run(on_new_connections(parse, 2, layout_body())) == [503] * 2
        time.sleep(1)

    with start(ports, tmp_path / "triton-2.log") as triton:
        back = time.monotonic()
        time.sleep(max(0.0, back + BACK_BY - time.monotonic()))
        served = each_worker(gateway.proc.pid, parse, 6, layout_body())
        probes = each_worker(gateway.proc.pid, ready, 2)
    assert len(served) == 2 and all(s == [200] * 6 for s in served.values()), served
    assert all(s == [200, 200] for s in probes.values()), probes
