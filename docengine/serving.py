"""Runs engine coroutines behind a Triton Python-backend model, answering each request the moment it is done.

`execute` hands each request of a batch to an event loop in a background thread and returns at once, so
Triton can pass the next batch while earlier ones are still waiting on the VLM: batches overlap on one model
instance. Each request's response goes out through its response sender when its own coroutine finishes: the
envelope as compact JSON in `output`, and its HTTP status in the INT32 `status` beside it, so that the gateway
passes the body on without parsing it. The request's Triton id is the gateway's logId. A request the client
gave up on (`is_cancelled()`) has its coroutine cancelled, which drops its queued layout pages and VLM calls.
The Triton utilities module is passed in, so this file imports nothing from Triton.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from contract.envelope import dumps
from contract.names import INPUT, OUTPUT, STATUS
from docengine.types import RequestMeta

log = logging.getLogger(__name__)

Handler = Callable[[bytes, RequestMeta], Awaitable[dict[str, Any]]]
BACKGROUND = "background"   # a request parameter: true for background work (a page of an asynchronous job)


def request_meta(request: Any) -> RequestMeta:
    """The gateway's logId (the request id) and the request's parameters."""
    try:
        parameters = json.loads(request.parameters() or "{}")
    except (ValueError, TypeError):
        parameters = {}
    return RequestMeta(log_id=request.request_id() or None, background=parameters.get(BACKGROUND) is True)


def setup_logging() -> None:
    """The models' log format and level (HPS_LOG_LEVEL), the same for every model of the repository."""
    logging.basicConfig(level=os.environ.get("HPS_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def http_status(envelope: dict[str, Any]) -> int:
    """The status an envelope asks for: 200 for errorCode 0, else errorCode itself."""
    code = envelope.get("errorCode", 500)
    return 200 if code == 0 else int(code)


class AsyncRequestRunner:
    def __init__(self, pb_utils: Any, *, max_in_flight: int = 64, cancel_poll_s: float = 0.2) -> None:
        self._pb = pb_utils
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._cancel_poll_s = cancel_poll_s
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="engine-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[Any]) -> Any:
        """Run a coroutine on the engine loop and wait for it (for set-up and tear-down)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()  # type: ignore[arg-type]

    def submit(self, requests: list[Any], handler: Handler) -> None:
        """Start every request of a batch. Blocks only while `max_in_flight` requests are already running,
        which leaves further requests queued in Triton (where its queue policy and statistics see them)."""
        for request in requests:
            self._slots.acquire()
            raw = self._pb.get_input_tensor_by_name(request, INPUT).as_numpy().reshape(-1)[0]
            asyncio.run_coroutine_threadsafe(self._serve(request, bytes(raw), handler), self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self, request: Any, raw: bytes, handler: Handler) -> None:
        sender = request.get_response_sender()
        try:
            task = asyncio.ensure_future(handler(raw, request_meta(request)))
            while not task.done():
                await asyncio.wait({task}, timeout=self._cancel_poll_s)
                if not task.done() and request.is_cancelled():
                    task.cancel()
                    log.info("request cancelled by its client; its remaining work was dropped")
            if task.cancelled():
                error = self._pb.TritonError("request cancelled")
                sender.send(self._pb.InferenceResponse(error=error),
                            flags=self._pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                return
            envelope = task.result()
            body = np.array([[dumps(envelope)]], dtype=object)
            status = np.array([[http_status(envelope)]], dtype=np.int32)
            response = self._pb.InferenceResponse(output_tensors=[self._pb.Tensor(OUTPUT, body),
                                                                  self._pb.Tensor(STATUS, status)])
            sender.send(response, flags=self._pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        except Exception as exc:  # the handler turns failures into envelopes: this is the last resort
            log.exception("could not answer a request")
            sender.send(self._pb.InferenceResponse(error=self._pb.TritonError(f"execution failed: {exc}")),
                        flags=self._pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        finally:
            self._slots.release()
