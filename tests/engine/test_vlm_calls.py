"""VLM calls against a mocked OpenAI-compatible server: the request's shape, routing between several
servers, retries and errors."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from docengine.errors import VLMBadResponseError, VLMUnavailableError
from docengine.recognition.client import VLMClient
from docengine.settings import EngineSettings
from tests.engine.mock_vlm import MODEL, URL_A, URL_B, assert_idle, completion, echo, prompt_of, task, until

# --- request shape ------------------------------------------------------------------------------------------


async def test_request_body_is_the_paddlex_chat_request(router, make_client):
    route = router.post(f"{URL_A}/v1/chat/completions").mock(return_value=completion("Hello"))
    client = make_client()
    full = task("Table Recognition:", min_pixels=112896, max_pixels=1003520, max_tokens=512, temperature=0.2,
                top_p=0.9, repetition_penalty=1.05, skip_special_tokens=False)
    assert await client.recognize("req", [full]) == ["Hello"]

    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    url = body["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as img:
        assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (6, 4))
        assert abs(int(np.asarray(img)[2, 3, 0]) - 200) <= 3
    expected = io.BytesIO()
    Image.fromarray(full.image).save(expected, format="JPEG")   # PIL's default quality, as PaddleX
    assert url == "data:image/jpeg;base64," + base64.b64encode(expected.getvalue()).decode()
    assert body == {
        "model": MODEL,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": "Table Recognition:"},
        ]}],
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 512,
        "repetition_penalty": 1.05,
        "skip_special_tokens": False,
        "mm_processor_kwargs": {"min_pixels": 112896, "max_pixels": 1003520},
    }


async def test_unset_sampling_fields_are_left_out(router, make_client):
    route = router.post(f"{URL_A}/v1/chat/completions").mock(return_value=completion("x"))
    client = make_client()
    await client.recognize("req", [task("OCR:")])
    body = json.loads(route.calls.last.request.content)
    assert set(body) == {"model", "messages", "temperature", "max_completion_tokens", "skip_special_tokens"}
    assert body["temperature"] == 0.0
    assert (body["max_completion_tokens"], body["skip_special_tokens"]) == (4096, True)


async def test_texts_are_aligned_with_tasks_whatever_the_finish_order(router, make_client):
    async def slower_first(request: httpx.Request) -> httpx.Response:
        n = int(prompt_of(request))
        await asyncio.sleep(0.002 * (10 - n))
        return completion(f"t{n}")
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=slower_first)
    client = make_client()
    assert await client.recognize("req", [task(str(i)) for i in range(10)]) == [f"t{i}" for i in range(10)]
    assert await client.recognize("req", []) == []
    assert_idle(client)


async def test_null_content_is_empty_text(router, make_client):
    router.post(f"{URL_A}/v1/chat/completions").mock(return_value=completion(None))
    assert await make_client().recognize("req", [task("OCR:")]) == [""]


def test_from_settings():
    settings = EngineSettings(vlm_url="http://a:1/v1/, http://b:2", vlm_model_name="", vlm_max_concurrency=7,
                              vlm_request_share=0.5, vlm_timeout=30, vlm_retries=4, vlm_failure_cooldown=2.5,
                              pipeline_name="PaddleOCR-VL")  # type: ignore[call-arg]
    client = VLMClient.from_settings(settings)
    assert client.caller.urls == ["http://a:1", "http://b:2"]
    caller = client.caller
    assert (caller.model, client.max_concurrency, caller.timeout) == ("PaddleOCR-VL-0.9B", 7, 30)
    assert client.max_per_owner == 3
    assert (client.caller.retries, client.caller.failure_cooldown) == (4, 2.5)


# --- several servers ----------------------------------------------------------------------------------------


async def test_calls_go_to_the_least_busy_url(router, make_client):
    seen: list[str] = []
    release = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        await release.wait()
        return completion("ok")
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=handler)
    router.post(f"{URL_B}/v1/chat/completions").mock(side_effect=handler)
    client = make_client([URL_A, URL_B], max_concurrency=4)
    job = asyncio.create_task(client.recognize("A", [task(str(i)) for i in range(4)]))
    await until(lambda: len(seen) >= 4)
    assert sorted(seen) == ["vlm-a", "vlm-a", "vlm-b", "vlm-b"]
    assert client.caller.outstanding() == {URL_A: 2, URL_B: 2}
    release.set()
    await job


async def test_failing_url_cools_down_then_comes_back(router, make_client):
    a_fails = True

    async def a_handler(request: httpx.Request) -> httpx.Response:
        if a_fails:
            raise httpx.ConnectError("connection refused", request=request)
        return completion("from a")
    route_a = router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=a_handler)
    route_b = router.post(f"{URL_B}/v1/chat/completions").mock(return_value=completion("from b"))
    client = make_client([URL_A, URL_B], failure_cooldown=0.3)

    assert await client.recognize("r1", [task("x")]) == ["from b"]   # a refused, retried on b
    assert (route_a.call_count, route_b.call_count) == (1, 1)
    assert await client.recognize("r2", [task("x")]) == ["from b"]   # a is cooling down: skipped
    assert (route_a.call_count, route_b.call_count) == (1, 2)
    a_fails = False
    await asyncio.sleep(0.32)
    assert await client.recognize("r3", [task("x")]) == ["from a"]   # cooldown over
    assert client.caller.retries_total == 1


async def test_all_urls_cooling_down_are_still_tried(router, make_client):
    route_a = router.post(f"{URL_A}/v1/chat/completions").mock(
        side_effect=[httpx.Response(503), httpx.Response(503), completion("a")])
    client = make_client([URL_A], failure_cooldown=60)
    assert await client.recognize("r", [task("x")]) == ["a"]
    assert route_a.call_count == 3


# --- retries and errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    httpx.Response(503, json={"message": "overloaded"}),
    httpx.Response(429, json={"error": {"message": "slow down"}}),
    httpx.ConnectError("refused"),
    httpx.ConnectTimeout("connect timed out"),
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
])
async def test_transient_faults_are_retried(router, make_client, fault):
    route = router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=[fault, fault, completion("ok")])
    client = make_client(retries=2)
    assert await client.recognize("r", [task("x")]) == ["ok"]
    assert route.call_count == 3
    assert client.caller.retries_total == 2
    assert_idle(client)


async def test_retry_after_is_honoured(router, make_client):
    route = router.post(f"{URL_A}/v1/chat/completions").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "0.15"}), completion("ok")])
    client = make_client()
    start = time.monotonic()
    assert await client.recognize("r", [task("x")]) == ["ok"]
    assert time.monotonic() - start >= 0.15
    assert route.call_count == 2


async def test_retries_run_out_with_503_naming_url_and_cause(router, make_client):
    route = router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    client = make_client(retries=2)
    with pytest.raises(VLMUnavailableError) as info:
        await client.recognize("r", [task("x")])
    assert info.value.status == 503
    message = info.value.message
    assert URL_A in message and "ConnectError" in message and "3 attempts" in message
    assert route.call_count == 3
    assert client.failures_total == 1
    assert_idle(client)


async def test_bad_request_is_not_retried(router, make_client):
    route = router.post(f"{URL_A}/v1/chat/completions").mock(return_value=httpx.Response(
        400, json={"object": "error", "message": "max_completion_tokens is too large", "code": 400}))
    client = make_client()
    with pytest.raises(VLMBadResponseError) as info:
        await client.recognize("r", [task("x")])
    assert info.value.status == 502
    assert "HTTP 400" in info.value.message and "max_completion_tokens is too large" in info.value.message
    assert route.call_count == 1


async def test_wrong_model_name_gets_a_hint(router, make_client):
    router.post(f"{URL_A}/v1/chat/completions").mock(return_value=httpx.Response(404, json={
        "error": {"message": f"The model `{MODEL}` does not exist.", "type": "NotFoundError", "code": 404}}))
    with pytest.raises(VLMBadResponseError) as info:
        await make_client().recognize("r", [task("x")])
    assert "does not exist" in info.value.message
    assert "HPS_VLM_MODEL_NAME" in info.value.message and "--served-model-name" in info.value.message


async def test_server_error_is_unavailable_without_retry(router, make_client):
    route = router.post(f"{URL_A}/v1/chat/completions").mock(return_value=httpx.Response(500, text="boom"))
    with pytest.raises(VLMUnavailableError, match="HTTP 500: boom"):
        await make_client().recognize("r", [task("x")])
    assert route.call_count == 1


@pytest.mark.parametrize("response", [
    httpx.Response(200, json={"choices": []}),
    httpx.Response(200, json={"object": "chat.completion"}),
    httpx.Response(200, text="<html>proxy page</html>"),
    httpx.Response(200, json={"choices": [{"message": {"content": ["a"]}}]}),
])
async def test_unusable_completion_is_bad_response(router, make_client, response):
    router.post(f"{URL_A}/v1/chat/completions").mock(return_value=response)
    with pytest.raises(VLMBadResponseError) as info:
        await make_client().recognize("r", [task("x")])
    assert info.value.status == 502 and URL_A in info.value.message


async def test_call_timeout(router, make_client):
    router.post(f"{URL_A}/v1/chat/completions").mock(side_effect=echo(delay=5))
    client = make_client(timeout=0.05)
    with pytest.raises(VLMUnavailableError, match="did not answer within 0.05 s"):
        await asyncio.wait_for(client.recognize("r", [task("x")]), 2)
    assert_idle(client)
