"""Async gRPC client of Triton: one inference call with a deadline, and readiness.

The wire format is the HPS one: a BYTES tensor `input` of shape [1, 1] holding the request's compact JSON, and
a BYTES tensor `output` holding the response envelope. The deadline is given twice, in tritonclient's two
units: `client_timeout` in seconds (the gRPC deadline, which Triton sees as a cancellation when it passes) and
`timeout` in microseconds (Triton's own queue timeout). Cancelling the awaiting task cancels the gRPC call,
and the model sees `request.is_cancelled()`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from gateway import metrics
from gateway.errors import BadUpstreamOutput, TritonUnavailable, UpstreamFailed, UpstreamTimeout

_UNAVAILABLE = {"StatusCode.UNAVAILABLE", "StatusCode.NOT_FOUND"}
_PARSE_IN_THREAD = 1024 * 1024  # bytes of output above which JSON is checked off the event loop


@dataclass(frozen=True)
class TritonOutput:
    """The model's envelope, byte for byte, and the HTTP status it asks for."""

    body: bytes
    status: int


def _status_of(body: bytes) -> int:
    """200 for errorCode 0, else errorCode itself; anything that is not an envelope is malformed."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadUpstreamOutput("Malformed response from the inference server: not JSON") from None
    code = doc.get("errorCode") if isinstance(doc, dict) else None
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(doc.get("errorMsg"), str):
        raise BadUpstreamOutput("Malformed response from the inference server: not an envelope")
    if code == 0:
        return 200
    if 400 <= code <= 599:
        return code
    raise BadUpstreamOutput(f"Malformed response from the inference server: errorCode {code}")


def _classify(exc: InferenceServerException, model: str) -> Exception:
    status = str(exc.status() or "")
    if status == "StatusCode.DEADLINE_EXCEEDED":
        return UpstreamTimeout()
    if status in _UNAVAILABLE or "unknown model" in (exc.message() or ""):
        return TritonUnavailable(f"Inference server unavailable (model {model})")
    return UpstreamFailed()


class TritonClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self._client = grpcclient.InferenceServerClient(url)

    async def close(self) -> None:
        await self._client.close()

    async def infer(self, model: str, payload: bytes, *, log_id: str, seconds: float) -> TritonOutput:
        """Run `model` on one request within `seconds`; raise a `gateway.errors` exception on any failure."""
        if seconds <= 0:
            raise UpstreamTimeout()
        data = grpcclient.InferInput("input", [1, 1], "BYTES")
        data.set_data_from_numpy(np.array([[payload]], dtype=np.object_))
        started = time.monotonic()
        try:
            # The gRPC deadline should fire first; this is the guarantee if the channel hangs.
            async with asyncio.timeout(seconds + 1):
                result = await self._client.infer(
                    model, [data], outputs=[grpcclient.InferRequestedOutput("output")],
                    request_id=log_id, headers={"x-request-id": log_id},
                    client_timeout=seconds, timeout=int(seconds * 1_000_000))
        except InferenceServerException as exc:
            raise _classify(exc, model) from exc
        except TimeoutError:
            raise UpstreamTimeout() from None
        finally:
            metrics.TRITON_LATENCY.labels(model).observe(time.monotonic() - started)
        output: Any = result.as_numpy("output")
        if output is None or output.size != 1 or not isinstance(output.flat[0], bytes):
            raise BadUpstreamOutput("Malformed response from the inference server: no output tensor")
        body = bytes(output.flat[0])
        if len(body) > _PARSE_IN_THREAD:
            status = await asyncio.to_thread(_status_of, body)
        else:
            status = _status_of(body)
        return TritonOutput(body, status)

    async def server_ready(self, seconds: float) -> bool:
        return bool(await self._client.is_server_ready(client_timeout=seconds))

    async def model_ready(self, model: str, seconds: float) -> bool:
        return bool(await self._client.is_model_ready(model, client_timeout=seconds))
