"""The Triton-side runner, driven by a stand-in for triton_python_backend_utils (the real one runs in
tests/triton against the real server)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from types import SimpleNamespace

import numpy as np

from docengine.serving import AsyncRequestRunner
from docengine.types import RequestMeta


class FakeRequest:
    def __init__(self, body: dict, request_id: str = "", params: dict | None = None) -> None:
        self.raw = json.dumps(body).encode()
        self.id = request_id
        self.params = params or {}
        self.sent: list[tuple[object, int]] = []
        self.cancelled = False
        self.done = threading.Event()

    def get_response_sender(self):
        return SimpleNamespace(send=self._send)

    def _send(self, response, flags):
        self.sent.append((response, flags))
        self.done.set()

    def is_cancelled(self) -> bool:
        return self.cancelled

    def request_id(self) -> str:
        return self.id

    def parameters(self) -> str:
        return json.dumps(self.params)


class FakeTensor:
    def __init__(self, name, array):
        self.name, self.array = name, array

    def as_numpy(self):
        return self.array


FINAL = 1
pb = SimpleNamespace(
    get_input_tensor_by_name=lambda r, name: FakeTensor(name, np.array([[r.raw]], dtype=object)),
    Tensor=FakeTensor,
    InferenceResponse=lambda output_tensors=None, error=None: SimpleNamespace(
        outputs=output_tensors, error=error),
    TritonError=lambda msg: SimpleNamespace(message=msg),
    TRITONSERVER_RESPONSE_COMPLETE_FINAL=FINAL,
)


async def sleepy_handler(raw: bytes, meta: RequestMeta) -> dict:
    body = json.loads(raw)
    await asyncio.sleep(body.get("sleep", 0))
    if "error" in body:
        return {"logId": meta.log_id, "errorCode": body["error"], "errorMsg": "refused"}
    kind = "background" if meta.background else "interactive"
    return {"logId": body.get("id", meta.log_id), "errorCode": 0, "errorMsg": kind}


def answer(req: FakeRequest) -> dict:
    """The envelope sent for `req`, checked against the status sent beside it."""
    response, flags = req.sent[0]
    assert flags == FINAL and response.error is None
    body, status = response.outputs
    envelope = json.loads(body.array[0, 0])
    assert (body.name, status.name) == ("output", "status") and status.array.dtype == np.int32
    assert int(status.array[0, 0]) == (200 if envelope["errorCode"] == 0 else envelope["errorCode"])
    return envelope


def test_submit_returns_at_once_and_each_request_is_answered_when_done():
    runner = AsyncRequestRunner(pb, cancel_poll_s=0.02)
    try:
        slow, fast = FakeRequest({"id": "slow", "sleep": 0.5}), FakeRequest({"id": "fast", "sleep": 0.05})
        t0 = time.monotonic()
        runner.submit([slow, fast], sleepy_handler)
        assert time.monotonic() - t0 < 0.1
        assert fast.done.wait(2) and not slow.done.is_set()
        assert answer(fast)["logId"] == "fast"
        assert slow.done.wait(2) and answer(slow)["logId"] == "slow"
        assert len(slow.sent) == len(fast.sent) == 1
    finally:
        runner.stop()


def test_a_cancelled_request_stops_its_work_and_gets_an_error():
    runner = AsyncRequestRunner(pb, cancel_poll_s=0.02)
    finished = []

    async def handler(raw: bytes, meta: RequestMeta) -> dict:
        await asyncio.sleep(5)
        finished.append(raw)
        return {}

    try:
        req = FakeRequest({"id": "x"})
        runner.submit([req], handler)
        time.sleep(0.1)
        req.cancelled = True
        assert req.done.wait(2)
        assert req.sent[0][0].error.message == "request cancelled" and not finished
    finally:
        runner.stop()


def test_in_flight_bound_holds_back_further_requests():
    runner = AsyncRequestRunner(pb, max_in_flight=1, cancel_poll_s=0.02)
    try:
        first, second = FakeRequest({"id": "a", "sleep": 0.3}), FakeRequest({"id": "b", "sleep": 0.0})
        t0 = time.monotonic()
        runner.submit([first, second], sleepy_handler)  # blocks until `first` frees its slot
        assert time.monotonic() - t0 >= 0.25
        assert second.done.wait(2) and answer(second)["logId"] == "b"
    finally:
        runner.stop()


def test_a_handler_crash_becomes_a_triton_error_not_a_hang():
    runner = AsyncRequestRunner(pb, cancel_poll_s=0.02)

    async def broken(raw: bytes, meta: RequestMeta) -> dict:
        raise RuntimeError("boom")

    try:
        req = FakeRequest({})
        runner.submit([req], broken)
        assert req.done.wait(2)
        assert "boom" in req.sent[0][0].error.message
    finally:
        runner.stop()


def test_the_triton_request_id_reaches_the_handler_and_the_status_travels_beside():
    runner = AsyncRequestRunner(pb, cancel_poll_s=0.02)
    try:
        named, refused = FakeRequest({}, request_id="gateway-7"), FakeRequest({"error": 422}, "gateway-8")
        runner.submit([named, refused], sleepy_handler)
        assert named.done.wait(2) and refused.done.wait(2)
        assert answer(named) == {"logId": "gateway-7", "errorCode": 0, "errorMsg": "interactive"}
        assert answer(refused)["errorCode"] == 422
        job_page = FakeRequest({}, "job-1-p3", params={"background": True})
        runner.submit([job_page], sleepy_handler)
        assert job_page.done.wait(2) and answer(job_page)["errorMsg"] == "background"
    finally:
        runner.stop()
