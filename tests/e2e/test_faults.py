"""Faults in the real stack: a recogniser that dies, hangs or talks nonsense, Triton dying, a client leaving,
the gateway told to stop. Each ends in a clear envelope within the deadline, never a hang; the gateway's slots
come back; and the stack recovers without restarting the tiers that did not fail.

The recogniser is the faulty one of this package, switched between behaviours at run time; the engine sends
it at most two calls at once, so a request's calls come one after another and it is easy to see them stop.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from devkit.documents import b64, encode_image, render_page, sample_pdf
from devkit.stack import Stack, eventually, running_stack

pytestmark = pytest.mark.slow

TIMEOUT = 4.0  # HPS_INFERENCE_TIMEOUT of the fault stack
BACKOFF = 3.0  # seconds before the supervisor restarts a tier that died
PAGE = encode_image(render_page(sample_pdf(1)[0], 0, dpi=72))
LONG_PDF = sample_pdf(2)[0]
CANCELLED = "request cancelled by its client"  # what the Triton model logs when it drops a request's work


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("faults"), recogniser="tests.e2e.faulty_recogniser",
                       workers=1, restart_backoff=BACKOFF,
                       # every block goes to the recogniser, whose faults these tests inject
                       engine_env={"HPS_VLM_MAX_CONCURRENCY": "2", "HPS_TEXT_SOURCE": "vlm"},
                       gateway_env={"HPS_INFERENCE_TIMEOUT": str(TIMEOUT)}) as running:
        yield running


@pytest.fixture(autouse=True)
def healthy(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each fault test starts from a ready stack with a well-behaved recogniser, and leaves no slot taken."""
    if "stack" not in request.fixturenames:
        yield
        return
    stack: Stack = request.getfixturevalue("stack")
    stack.wait_ready()
    control(stack, mode="ok", delay=0.05)
    yield
    assert stack.slots_free(), "a gateway slot was not given back"


def control(stack: Stack, **settings: Any) -> None:
    httpx.post(f"{stack.vlm_url}/control", json=settings, timeout=5).raise_for_status()


def calls(stack: Stack) -> int:
    return int(httpx.get(f"{stack.vlm_url}/stats", timeout=5).json()["calls"])


def post(stack: Stack, body: dict[str, Any], timeout: float = 30) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    resp = httpx.post(f"{stack.url}/layout-parsing", json=body, timeout=timeout)
    return resp, time.monotonic() - started


def assert_envelope(resp: httpx.Response, status: int, *fragments: str) -> str:
    envelope = resp.json()
    assert resp.status_code == status and envelope["errorCode"] == status, envelope
    assert set(envelope) == {"logId", "errorCode", "errorMsg"}
    for fragment in fragments:
        assert fragment in envelope["errorMsg"], (fragment, envelope["errorMsg"])
    return str(envelope["errorMsg"])


def assert_calls_stop(stack: Stack, settle: float = 1.5, watch: float = 2.5) -> int:
    """The recogniser gets no new call once `settle` seconds have passed; returns the count."""
    time.sleep(settle)
    settled = calls(stack)
    time.sleep(watch)
    assert calls(stack) == settled, "recogniser calls went on after the request was given up"
    return settled


async def refuse_new_request(url: str, body: dict) -> httpx.Response:
    """A new client's request during the drain: the 503 answer (a worker exiting just then may close the
    connection instead, which a client retries, as it would any reset connection)."""
    for _ in range(5):
        try:
            async with httpx.AsyncClient(timeout=10) as fresh:  # a new connection, as a new client opens
                return await fresh.post(url, json=body)
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    raise AssertionError("every new request during the drain lost its connection")


def unready(stack: Stack) -> Callable[[], str]:
    """For `eventually`: the readiness message once it is 503 (answers are cached for up to 1 s).

    While draining, a worker with nothing left in flight exits; a probe that reaches it just then sees the
    connection close, as a load balancer would (and counts as not ready): poll again for the message.
    """
    def message() -> str:
        try:
            answer = stack.ready()
        except httpx.TransportError:
            return ""
        return str(answer.json()["errorMsg"]) if answer.status_code == 503 else ""

    return message


def cancellations(stack: Stack) -> int:
    return stack.log_path.read_text(errors="replace").count(CANCELLED)


def pdf_calls(stack: Stack) -> int:
    """How many recogniser calls the long PDF takes when all is well."""
    before = calls(stack)
    resp, _ = post(stack, {"file": b64(LONG_PDF), "fileType": 0, "visualize": False})
    assert resp.status_code == 200, resp.text
    return calls(stack) - before


@pytest.mark.parametrize("mode", ["not_json", "no_choices"])
def test_a_recogniser_answering_garbage_gives_a_502_that_says_so(stack: Stack, mode: str) -> None:
    control(stack, mode=mode)
    resp, took = post(stack, {"file": b64(PAGE), "fileType": 1})
    assert_envelope(resp, 502, "VLM server", stack.vlm_url, "unusable completion")
    assert took < TIMEOUT
    control(stack, mode="ok")
    resp, _ = post(stack, {"file": b64(PAGE), "fileType": 1})
    assert resp.status_code == 200, resp.text


def test_a_slow_recogniser_gives_a_504_at_the_deadline_and_its_work_is_cancelled(stack: Stack) -> None:
    needed = pdf_calls(stack)
    control(stack, delay=1.5)
    before, cancelled = calls(stack), cancellations(stack)
    resp, took = post(stack, {"file": b64(LONG_PDF), "fileType": 0, "logId": "slow-1"})
    assert_envelope(resp, 504, "timeout")
    assert resp.json()["logId"] == "slow-1"
    assert TIMEOUT - 0.5 < took < TIMEOUT + 1.5
    made = assert_calls_stop(stack) - before
    assert 0 < made < needed, (made, needed)  # the rest of its calls never came
    assert cancellations(stack) == cancelled + 1
    control(stack, delay=0.05)
    resp, _ = post(stack, {"file": b64(PAGE), "fileType": 1})
    assert resp.status_code == 200, resp.text


def test_a_client_that_disconnects_has_its_work_cancelled_and_its_slot_freed(stack: Stack) -> None:
    control(stack, delay=1.0)
    left = stack.metric("gateway_requests_total", route="/layout-parsing", status="499")
    before, cancelled = calls(stack), cancellations(stack)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{stack.url}/layout-parsing", json={"file": b64(LONG_PDF), "fileType": 0}, timeout=1.5)
    made = assert_calls_stop(stack) - before
    assert 0 < made <= 4, made  # two calls at a time for 1.5 s, then nothing
    assert stack.slots_free(timeout=1)
    assert cancellations(stack) == cancelled + 1
    assert stack.metric("gateway_requests_total", route="/layout-parsing", status="499") == left + 1


async def test_a_recogniser_killed_mid_request_gives_a_503_and_is_back_for_the_next(stack: Stack) -> None:
    control(stack, delay=1.0)
    triton, gateway, vlm = stack.pid("triton"), stack.pid("gateway"), stack.pid("vlm")
    before = calls(stack)
    async with httpx.AsyncClient(timeout=30) as client:
        started = time.monotonic()
        call = asyncio.ensure_future(client.post(f"{stack.url}/layout-parsing",
                                                 json={"file": b64(PAGE), "fileType": 1}))
        assert await asyncio.to_thread(eventually, lambda: calls(stack) > before, 10, 0.05)
        stack.signal("vlm", signal.SIGKILL)
        resp = await call
        took = time.monotonic() - started
    assert_envelope(resp, 503, "VLM server", stack.vlm_url)
    assert took < TIMEOUT
    assert f"VLM server {stack.vlm_url}" in eventually(unready(stack), 2)

    stack.wait_ready(BACKOFF + 60)  # the supervisor starts the recogniser again, on the same port
    resp, _ = post(stack, {"file": b64(PAGE), "fileType": 1})
    assert resp.status_code == 200, resp.text
    assert stack.pid("vlm") != vlm and (stack.pid("triton"), stack.pid("gateway")) == (triton, gateway)
    assert stack.supervisor.restarts("triton") == stack.supervisor.restarts("gateway") == 0


def test_triton_killed_gives_503s_naming_it_and_the_gateway_recovers_when_it_is_back(stack: Stack) -> None:
    gateway, vlm = stack.pid("gateway"), stack.pid("vlm")
    stack.signal("triton", signal.SIGKILL)
    resp, took = post(stack, {"file": b64(PAGE), "fileType": 1})
    assert_envelope(resp, 503, "Inference server unavailable")
    assert took < TIMEOUT
    resp = httpx.post(f"{stack.url}/restructure-pages", json={"pages": [{"prunedResult": {}}]}, timeout=30)
    assert_envelope(resp, 503, "Inference server unavailable")

    message = eventually(unready(stack), 2)
    assert "Triton server" in message and "Triton model 'layout-parsing'" in message, message

    stack.wait_ready(BACKOFF + 90)
    resp, _ = post(stack, {"file": b64(PAGE), "fileType": 1})
    assert resp.status_code == 200, resp.text
    assert (stack.pid("gateway"), stack.pid("vlm")) == (gateway, vlm)
    assert stack.supervisor.restarts("triton") == 1 and stack.supervisor.restarts("gateway") == 0


# --- graceful shutdown -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def busy_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The synthetic recogniser at 2 s per call, all of a request's calls at once, so that a request takes
    2-3 s; a gateway of two workers, as production runs several."""
    with running_stack(tmp_path_factory.mktemp("drain"), recogniser="synthetic", workers=1,
                       restart_backoff=BACKOFF,
                       recogniser_args=["--service-time", "2.0", "--parallel", "64"],
                       engine_env={"HPS_VLM_MAX_CONCURRENCY": "64"},
                       gateway_env={"UVICORN_WORKERS": "2", "HPS_DRAIN_TIMEOUT": "30"}) as running:
        yield running


async def test_sigterm_drains_in_flight_requests_refuses_new_ones_then_exits(busy_stack: Stack) -> None:
    stack = busy_stack
    gateway = stack.pid("gateway")
    body = {"file": b64(PAGE), "fileType": 1, "visualize": False}
    async with httpx.AsyncClient(timeout=60) as client:
        started = time.monotonic()
        url = f"{stack.url}/layout-parsing"
        sent = [asyncio.ensure_future(client.post(url, json=body)) for _ in range(4)]
        in_flight = await asyncio.to_thread(
            eventually, lambda: stack.metric("gateway_requests_in_flight", pool="inference") == 4, 10, 0.05)
        assert in_flight
        stack.signal("gateway", signal.SIGTERM)  # to the main process, as `docker stop` does
        # Uvicorn's supervisor passes the signal on to its workers on its next tick (0.5 s).
        assert "shutting down" in await asyncio.to_thread(eventually, unready(stack), 2, 0.05)
        refused = await refuse_new_request(f"{stack.url}/layout-parsing", body)
        assert_envelope(refused, 503, "shutting down")
        assert refused.headers["connection"] == "close"
        answers = await asyncio.gather(*sent)
        took = time.monotonic() - started
    assert [a.status_code for a in answers] == [200] * 4, [a.text[:200] for a in answers]
    assert all(a.json()["result"]["layoutParsingResults"] for a in answers)
    assert took < 15
    # It exited by itself, cleanly; the supervisor then started a new one (as it restarts any tier that ends).
    assert eventually(lambda: stack.supervisor.pid("gateway") not in (None, gateway), 20), stack.log_tail()
    assert "gateway exited with code 0" in stack.log_tail(20000)
