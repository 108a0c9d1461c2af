"""VLMClient against a mocked OpenAI-compatible server: request shape, fairness, bounds, routing, faults."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import numpy as np
import pytest
import respx
from PIL import Image

from docengine.errors import CancelledRequestError, VLMBadResponseError, VLMUnavailableError
from docengine.recognition.client import VLMClient
from docengine.settings import EngineSettings
from docengine.types import VLMTask

URL_A = "http://vlm-a:8118"
URL_B = "http://vlm-b:8118"
MODEL = "PaddleOCR-VL-1.5-0.9B"

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def completion(text: str | None) -> httpx.Response:
    message = {"role": "assistant", "content": text}
    return httpx.Response(200, json={"id": "x", "object": "chat.completion",
                                     "choices": [{"index": 0, "message": message}]})


def prompt_of(request: httpx.Request) -> str:
    return json.loads(request.content)["messages"][0]["content"][1]["text"]


def task(prompt: str, **kw: object) -> VLMTask:
    image = np.zeros((4, 6, 3), np.uint8)
    image[:, :, 0] = 200
    return VLMTask(image=image, prompt=prompt, **kw)  # type: ignore[arg-type]


def echo(delay: float = 0.0, log: list[str] | None = None) -> Handler:
    """A server that answers each prompt with itself, after `delay`, logging arrivals."""
    async def handler(request: httpx.Request) -> httpx.Response:
        prompt = prompt_of(request)
        if log is not None:
            log.append(prompt)
        await asyncio.sleep(delay)
        return completion(f"text of {prompt}")
    return handler


class Gauge:
    """Counts requests open at the mocked server and the most seen at once."""

    def __init__(self, delay: float) -> None:
        self.delay, self.now, self.peak = delay, 0, 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.now -= 1
        return completion(prompt_of(request))


@pytest.fixture
def router() -> respx.MockRouter:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def make_client(router: respx.MockRouter) -> AsyncIterator[Callable[..., VLMClient]]:
    clients: list[VLMClient] = []

    def make(urls: list[str] | None = None, **kw: object) -> VLMClient:
        kw.setdefault("backoff", 0.001)
        client = VLMClient(urls or [URL_A], MODEL, **kw)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def until(condition: Callable[[], bool], deadline: float = 2.0) -> None:
    """Poll briefly for a state of the mocked server (a test never hangs on it)."""
    for _ in range(int(deadline / 0.001)):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


async def settle() -> None:
    """Let done-callbacks and cancellations run."""
    for _ in range(5):
        await asyncio.sleep(0)


def assert_idle(client: VLMClient) -> None:
    assert client.in_flight == 0
    assert client.queued() == 0
    assert client.queued_by_owner() == {}
    assert all(n == 0 for n in client.caller.outstanding().values())


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


class Gate:
    """A server that holds every call until released, logging arrivals and cancellations."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.open = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        prompt = prompt_of(request)
        self.started.append(prompt)
        try:
            await self.open.wait()
        except asyncio.CancelledError:
            self.cancelled.append(prompt)
            raise
        return completion(prompt)


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
    assert client.queued_by_owner() == {"A": 2}
    gate.open.set()
    assert await job == ["1", "2", "3"]
    assert_idle(client)


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
