"""A gateway in front of several Tritons (`HPS_TRITON_URL=a,b`): a Triton that is down is skipped, requests
are answered by the others, and readiness says which one is down while the gateway still serves."""

from __future__ import annotations

from typing import Any

import httpx

from localstack.triton import TritonProcess, free_port

from .conftest import StubVLM, layout_body, new_id


def test_a_triton_that_is_down_is_skipped_and_readiness_says_so(start_gateway: Any, triton: TritonProcess,
                                                                 vlm: StubVLM) -> None:
    vlm.status = 200
    gone = f"127.0.0.1:{free_port()}"
    gateway = start_gateway(HPS_TRITON_URL=f"{gone},{triton.url_grpc}", HPS_VLM_URL=vlm.url,
                            HPS_HEALTH_CHECK_TIMEOUT="1")
    for _ in range(4):   # whichever Triton a request is sent to first, the live one answers it
        response = httpx.post(f"{gateway.url}/layout-parsing", json=layout_body(new_id()), timeout=30)
        assert response.status_code == 200 and response.json()["errorCode"] == 0, response.text
    assert f"Triton at {gone} is unavailable" in gateway.log()
    ready = httpx.get(f"{gateway.url}/health/ready", timeout=10)
    assert ready.status_code == 200
    message = ready.json()["errorMsg"]
    assert message.startswith("Ready, degraded: ") and f"Triton server at {gone}" in message
    assert triton.url_grpc not in message


def test_with_every_triton_down_requests_are_503_and_the_gateway_is_not_ready(start_gateway: Any,
                                                                              vlm: StubVLM) -> None:
    vlm.status = 200
    gone = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    gateway = start_gateway(HPS_TRITON_URL=",".join(gone), HPS_VLM_URL=vlm.url, HPS_HEALTH_CHECK_TIMEOUT="1")
    response = httpx.post(f"{gateway.url}/layout-parsing", json=layout_body(new_id()), timeout=30)
    assert response.status_code == 503
    assert response.json()["errorMsg"].startswith("Inference server unavailable")
    ready = httpx.get(f"{gateway.url}/health/ready", timeout=10)
    assert ready.status_code == 503
    assert all(f"Triton server at {url}" in ready.json()["errorMsg"] for url in gone)
