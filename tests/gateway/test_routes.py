"""The public routes against a real Triton: envelopes, pass-through, the error map, probes, docs, metrics."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import Events, Gateway, StubVLM, layout_body, new_id

BODY_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def second_vlm() -> Iterator[StubVLM]:
    stub = StubVLM()
    yield stub
    stub.close()


@pytest.fixture(scope="module")
def gateway(start_gateway: Any, vlm: StubVLM, second_vlm: StubVLM) -> Gateway:
    return start_gateway(HPS_VLM_URL=f"{vlm.url}/v1,{second_vlm.url}", HPS_INFERENCE_TIMEOUT="2",
                         HPS_MAX_BODY_SIZE=str(BODY_LIMIT))  # type: ignore[no-any-return]


def post(gateway: Gateway, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{gateway.url}{path}", json=body, timeout=30, **kwargs)


def test_health_is_a_healthy_envelope_with_the_request_id(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/health")
    body = response.json()
    assert response.status_code == 200
    assert body["errorCode"] == 0 and body["errorMsg"] == "Healthy"
    assert response.headers["x-request-id"] == body["logId"]


def test_an_x_request_id_header_is_the_log_id_unless_the_body_has_one(gateway: Gateway) -> None:
    probe = httpx.get(f"{gateway.url}/health", headers={"x-request-id": "probe-7"})
    assert probe.json()["logId"] == "probe-7"
    log_id = new_id()
    response = post(gateway, "/layout-parsing", layout_body(log_id), headers={"x-request-id": "header-id"})
    assert response.json()["logId"] == log_id == response.headers["x-request-id"]
    response = post(gateway, "/layout-parsing", layout_body(), headers={"x-request-id": "header-id"})
    assert response.json()["logId"] == "header-id" == response.json()["result"]["echo"]["requestId"]


def test_a_log_id_in_any_script_reaches_triton_and_comes_back(gateway: Gateway) -> None:
    """The logId travels to Triton as its request id (a protobuf string), never as a gRPC header (ASCII)."""
    response = post(gateway, "/layout-parsing", layout_body("日志-7 ü"))
    assert response.status_code == 200, response.text
    assert response.json()["logId"] == "日志-7 ü" == response.json()["result"]["echo"]["requestId"]
    assert response.headers["x-request-id"] == "__-7__"   # the header keeps to what a header can carry


def test_unknown_paths_and_methods_get_envelopes_too(gateway: Gateway) -> None:
    missing = httpx.get(f"{gateway.url}/nowhere")
    assert missing.status_code == 404 and missing.json()["errorCode"] == 404
    wrong = httpx.get(f"{gateway.url}/layout-parsing")
    assert wrong.status_code == 405 and wrong.json()["errorCode"] == 405 and wrong.headers["allow"] == "POST"


def test_answered_probes_stay_out_of_the_access_log(gateway: Gateway) -> None:
    probe = httpx.get(f"{gateway.url}/health", headers={"x-request-id": "quiet-probe"})
    assert probe.status_code == 200
    assert httpx.get(f"{gateway.url}/openapi.json", headers={"x-request-id": "loud-docs"}).status_code == 200
    deadline = time.monotonic() + 5
    while "[loud-docs]" not in gateway.log():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "[quiet-probe]" not in gateway.log()


def test_layout_parsing_forwards_the_clients_bytes_and_returns_the_envelope(gateway: Gateway) -> None:
    sent = {"file": "aGVsbG8=", "fileType": 1, "temperature": 0.5, "someNewerField": {"nested": [1, None]}}
    raw = json.dumps(sent, indent=2).encode()   # spaces and all: forwarded as they came
    response = httpx.post(f"{gateway.url}/layout-parsing", content=raw,
                          headers={"content-type": "application/json"}, timeout=30)
    envelope = response.json()
    assert response.status_code == 200 and envelope["errorCode"] == 0 and envelope["errorMsg"] == "Success"
    echo = envelope["result"]["echo"]
    assert echo["model"] == "layout-parsing"
    # The client's own bytes: unknown fields untouched, defaults not added; the logId travels beside them.
    assert echo["body"] == sent and echo["size"] == len(raw)
    assert echo["requestId"] == envelope["logId"] == response.headers["x-request-id"]


def test_the_clients_log_id_is_kept_everywhere(gateway: Gateway) -> None:
    log_id = new_id()
    response = post(gateway, "/layout-parsing", layout_body(log_id))
    assert response.json()["logId"] == log_id
    assert response.json()["result"]["echo"]["body"]["logId"] == log_id
    assert response.json()["result"]["echo"]["requestId"] == log_id
    assert response.headers["x-request-id"] == log_id
    assert f"[{log_id}]" in gateway.log()  # the access log line of the request carries it


def test_restructure_pages_goes_to_its_own_model(gateway: Gateway) -> None:
    response = post(gateway, "/restructure-pages", {"pages": [{"prunedResult": {"width": 1}}]})
    assert response.status_code == 200
    assert response.json()["result"]["echo"]["model"] == "restructure-pages"


@pytest.mark.parametrize("code", [422, 500, 503])
def test_a_models_error_envelope_becomes_the_status(gateway: Gateway, code: int) -> None:
    log_id = new_id()
    response = post(gateway, "/layout-parsing", layout_body(log_id, error=code))
    assert response.status_code == code
    expected = {"logId": log_id, "errorCode": code, "errorMsg": f"test error {code}"}
    assert response.content == json.dumps(expected, separators=(",", ":")).encode()  # byte for byte


@pytest.mark.parametrize("control", [{"garbage": True}, {"notEnvelope": True}])
def test_malformed_model_output_is_502(gateway: Gateway, control: dict[str, Any]) -> None:
    response = post(gateway, "/layout-parsing", layout_body(new_id(), **control))
    assert response.status_code == 502 and response.json()["errorCode"] == 502


def test_a_triton_error_is_500_with_the_log_id_and_no_internals(gateway: Gateway) -> None:
    log_id = new_id()
    response = post(gateway, "/layout-parsing", layout_body(log_id, **{"raise": "secret detail"}))
    assert response.status_code == 500
    assert response.json() == {"logId": log_id, "errorCode": 500, "errorMsg": "Internal server error"}
    assert "secret detail" in gateway.log()  # the detail is logged, under the logId
    assert any(log_id in line and "secret detail" in line for line in gateway.log().splitlines())


@pytest.mark.parametrize("raw", [b'{"file": ', b'{"file": NaN, "fileType": 1}', b"\xff\xfe"])
def test_invalid_json_is_400(gateway: Gateway, raw: bytes) -> None:
    response = httpx.post(f"{gateway.url}/layout-parsing", content=raw,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["errorCode"] == 400


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data", "application/xml"])
def test_a_body_declared_as_something_other_than_json_is_422(gateway: Gateway, content_type: str) -> None:
    response = httpx.post(f"{gateway.url}/layout-parsing", content=json.dumps(layout_body()).encode(),
                          headers={"content-type": content_type})
    assert response.status_code == 422 and response.json()["errorCode"] == 422
    assert repr(content_type) in response.json()["errorMsg"]


@pytest.mark.parametrize("content_type", [None, "", "application/json; charset=utf-8", "application/ld+json"])
def test_a_body_without_a_content_type_or_declared_json_is_read_as_json(gateway: Gateway,
                                                                        content_type: str | None) -> None:
    """As FastAPI reads the official gateway's `body: dict`: `requests.post(url, data=json.dumps(body))`."""
    raw = json.dumps(layout_body()).encode()
    headers = {} if content_type is None else {"content-type": content_type}
    response = httpx.post(f"{gateway.url}/layout-parsing", content=raw, headers=headers)
    if content_type is None:
        assert "content-type" not in response.request.headers
    assert response.status_code == 200, response.text
    assert response.json()["result"]["echo"]["size"] == len(raw)


def test_validation_names_each_bad_field_and_takes_no_slot(gateway: Gateway, events: Events) -> None:
    log_id = new_id()
    response = post(gateway, "/layout-parsing", {"fileType": 5, "topP": 2, "minPixels": 0, "logId": log_id})
    assert response.status_code == 422
    body = response.json()
    assert body["logId"] == log_id
    bad = {issue["loc"] for issue in json.loads(body["errorMsg"])}
    assert bad == {"file", "fileType", "topP", "minPixels"}
    assert events.of(log_id) == []  # never reached Triton
    response = post(gateway, "/restructure-pages", {"pages": []})
    assert response.status_code == 422 and "pages" in response.json()["errorMsg"]


def test_a_declared_oversize_body_is_413_before_it_is_read(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"POST /layout-parsing HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):  # the gateway closes the connection after answering
            chunks.append(chunk)
        answer = b"".join(chunks).decode()
    assert answer.startswith("HTTP/1.1 413")
    assert '"errorCode":413' in answer


def test_a_streamed_oversize_body_is_413(gateway: Gateway) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"file": "'
        for _ in range(BODY_LIMIT // 8192 + 2):
            yield b"A" * 8192
        yield b'", "fileType": 1}'

    response = httpx.post(f"{gateway.url}/layout-parsing", content=chunks(),
                          headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["errorCode"] == 413


def test_a_body_just_under_the_limit_passes(gateway: Gateway) -> None:
    response = post(gateway, "/layout-parsing", {"file": "A" * (BODY_LIMIT - 100), "fileType": 1})
    assert response.status_code == 200


def test_past_the_inference_timeout_it_is_504_and_triton_cancelled(gateway: Gateway, events: Events) -> None:
    log_id = new_id()
    response = post(gateway, "/layout-parsing", layout_body(log_id, sleep=30))
    assert response.status_code == 504 and response.json()["logId"] == log_id
    assert response.elapsed.total_seconds() < 4
    assert events.wait_for(log_id, "cancelled"), events.of(log_id)
    assert "finish" not in events.of(log_id)


async def test_a_client_that_leaves_cancels_its_triton_call(gateway: Gateway, events: Events) -> None:
    log_id = new_id()
    async with httpx.AsyncClient() as client:
        call = asyncio.ensure_future(client.post(f"{gateway.url}/layout-parsing",
                                                 json=layout_body(log_id, sleep=10), timeout=30))
        assert await asyncio.to_thread(events.wait_for, log_id, "start")
        call.cancel()  # closes the connection
        with pytest.raises(asyncio.CancelledError):
            await call
    assert await asyncio.to_thread(events.wait_for, log_id, "cancelled")
    await asyncio.sleep(0.2)
    assert gateway.metric("gateway_requests_in_flight", pool="inference") == 0
    assert gateway.metric("gateway_requests_total", route="/layout-parsing", status="499") >= 1


def test_readiness_asks_triton_and_every_vlm_server(gateway: Gateway, vlm: StubVLM,
                                                    second_vlm: StubVLM) -> None:
    vlm.status = second_vlm.status = 200
    time.sleep(1.1)  # past the cache
    response = httpx.get(f"{gateway.url}/health/ready")
    assert response.status_code == 200 and response.json()["errorMsg"] == "Ready"
    second_vlm.status = 503
    try:
        time.sleep(1.1)   # one VLM server of two down: the engine skips it, so the gateway still serves
        response = httpx.get(f"{gateway.url}/health/ready")
        assert response.status_code == 200
        message = response.json()["errorMsg"]
        assert message.startswith("Ready, degraded: ") and second_vlm.url in message
        assert vlm.url not in message
        vlm.status = 503
        time.sleep(1.1)   # both down: not ready
        response = httpx.get(f"{gateway.url}/health/ready")
        assert response.status_code == 503
        message = response.json()["errorMsg"]
        assert message.startswith("Not ready: ") and second_vlm.url in message and vlm.url in message
    finally:
        vlm.status = second_vlm.status = 200


async def test_a_crowd_of_probes_costs_one_check(gateway: Gateway, vlm: StubVLM) -> None:
    await asyncio.sleep(1.1)
    before = vlm.hits
    async with httpx.AsyncClient() as client:
        answers = await asyncio.gather(*[client.get(f"{gateway.url}/health/ready") for _ in range(30)])
    assert {a.status_code for a in answers} == {200}
    assert vlm.hits - before <= 3  # one round, or a few if a slow machine spread the crowd over the 1 s cache


def test_docs_redoc_openapi_and_metrics_are_served(gateway: Gateway) -> None:
    oversize = httpx.post(f"{gateway.url}/layout-parsing", content=b"x" * (BODY_LIMIT + 1),
                          headers={"content-type": "application/json"})
    assert oversize.status_code == 413
    assert "swagger-ui" in httpx.get(f"{gateway.url}/docs").text
    assert "redoc" in httpx.get(f"{gateway.url}/redoc").text.lower()
    assert httpx.get(f"{gateway.url}/openapi.json").json()["info"]["title"]
    metrics = httpx.get(f"{gateway.url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in ("gateway_requests_total", "gateway_request_duration_seconds_bucket",
                 "gateway_requests_in_flight", "gateway_requests_queued", "gateway_rejections_total"):
        assert name in metrics.text
    assert gateway.metric("gateway_rejections_total", reason="body_too_large") >= 1
