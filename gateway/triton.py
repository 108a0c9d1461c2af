"""Async gRPC client of one or several Tritons: one inference call with a deadline, and readiness.

The wire format is the HPS one: a BYTES tensor `input` of shape [1, 1] holding the request's JSON (the
client's own bytes), a BYTES tensor `output` holding the response envelope, and beside it an INT32 `status`,
the HTTP status the envelope asks for, so that the body (tens of MB of Base64 images for a long visualised
document) is passed on without being parsed. The request's Triton id is its logId.

The deadline is given twice, in tritonclient's two units: `client_timeout` in seconds (the gRPC deadline,
which Triton sees as a cancellation when it passes) and `timeout` in microseconds (Triton's own queue
timeout). Cancelling the awaiting task cancels the gRPC call, and the model sees `request.is_cancelled()`.

Reconnection: when Triton goes away, the channel retries the connection after a delay that gRPC grows with
every failure, up to two minutes by default; a call made while it waits fails at once (503). Capped at one
second here, every worker serves again within about a second of Triton's return, however long it was gone.

Several Tritons (`HPS_TRITON_URL=a:8001,b:8001`, e.g. the pods of a StatefulSet): one channel to each, and
each call goes to the one with the fewest calls in flight from this worker (a Kubernetes ClusterIP Service
would pin each worker's one long-lived HTTP/2 connection to one pod). A Triton that is unavailable is
skipped for `COOLDOWN` seconds, and the call is made again on another one within the same deadline: a parse
has no side effects, so the worst case of a Triton lost mid-call is that its pages are parsed twice.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE
from tritonclient.utils import InferenceServerException

from contract.names import INPUT, OUTPUT, STATUS
from gateway import metrics
from gateway.errors import BadUpstreamOutput, TritonUnavailable, UpstreamFailed, UpstreamTimeout

log = logging.getLogger("gateway.triton")

_UNAVAILABLE = {"StatusCode.UNAVAILABLE", "StatusCode.NOT_FOUND"}
COOLDOWN = 5.0   # seconds an unavailable Triton is passed over while another one is there

# The channel's options: tritonclient's message limits, a short reconnect delay (see above), and a fresh name
# lookup after a failure (a restarted container may come back at another address; gRPC waits 30 s by default).
RECONNECT_BACKOFF_MS = 1000
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
    ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS // 2),
    ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
    ("grpc.dns_min_time_between_resolutions_ms", RECONNECT_BACKOFF_MS),
]


@dataclass(frozen=True)
class TritonOutput:
    """The model's envelope, byte for byte, and the HTTP status it asks for."""

    body: bytes
    status: int


def _one(result: Any, name: str) -> Any:
    """The single value of output tensor `name`, or None when the model did not send it."""
    try:
        tensor = result.as_numpy(name)
    except Exception:   # tritonclient raises on a missing output in some versions
        return None
    return tensor.flat[0] if tensor is not None and tensor.size == 1 else None


def _classify(exc: InferenceServerException, model: str) -> Exception:
    status = str(exc.status() or "")
    if status == "StatusCode.DEADLINE_EXCEEDED":
        return UpstreamTimeout()
    if status in _UNAVAILABLE or "unknown model" in (exc.message() or ""):
        return TritonUnavailable(f"Inference server unavailable (model {model})")
    return UpstreamFailed()


class TritonBackend:
    """One Triton, over one gRPC channel."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = grpcclient.InferenceServerClient(url, channel_args=CHANNEL_ARGS)

    async def close(self) -> None:
        await self._client.close()

    async def infer(self, model: str, payload: bytes, *, log_id: str, seconds: float,
                    parameters: dict[str, bool | int | str] | None = None) -> TritonOutput:
        """Run `model` on one request within `seconds`; raise a `gateway.errors` exception on any failure.
        `parameters` travel beside the body (the engine reads `background`)."""
        if seconds <= 0:
            raise UpstreamTimeout()
        data = grpcclient.InferInput(INPUT, [1, 1], "BYTES")
        data.set_data_from_numpy(np.array([[payload]], dtype=np.object_))
        started = time.monotonic()
        try:
            # The gRPC deadline should fire first; this is the guarantee if the channel hangs.
            async with asyncio.timeout(seconds + 1):
                result = await self._client.infer(
                    model, [data], outputs=[grpcclient.InferRequestedOutput(OUTPUT),
                                            grpcclient.InferRequestedOutput(STATUS)],
                    request_id=log_id,   # a protobuf field: any text (gRPC headers must be ASCII)
                    client_timeout=seconds, timeout=int(seconds * 1_000_000), parameters=parameters)
        except InferenceServerException as exc:
            raise _classify(exc, model) from exc
        except TimeoutError:
            raise UpstreamTimeout() from None
        finally:
            metrics.TRITON_LATENCY.labels(model).observe(time.monotonic() - started)
        body, status = _one(result, OUTPUT), _one(result, STATUS)
        if not isinstance(body, bytes):
            raise BadUpstreamOutput("Malformed response from the inference server: no output tensor")
        if status is None or not (status == 200 or 400 <= status <= 599):
            raise BadUpstreamOutput(f"Malformed response from the inference server: status {status}")
        return TritonOutput(body, int(status))

    async def server_ready(self, seconds: float) -> bool:
        return bool(await self._client.is_server_ready(client_timeout=seconds))

    async def model_ready(self, model: str, seconds: float) -> bool:
        return bool(await self._client.is_model_ready(model, client_timeout=seconds))


class TritonClient:
    """Every Triton of the setting, balanced by calls in flight, with failover (see the module docstring)."""

    def __init__(self, urls: str | Sequence[str]) -> None:
        parts = urls.split(",") if isinstance(urls, str) else urls
        self.backends = [TritonBackend(url.strip()) for url in parts if url.strip()]
        if not self.backends:
            raise ValueError("at least one Triton address is needed")
        self._in_flight = dict.fromkeys(self.backends, 0)
        self._cooling_until = dict.fromkeys(self.backends, 0.0)
        self._turn = itertools.count()   # who goes first among equals: sequential calls take turns

    @property
    def url(self) -> str:
        return ",".join(b.url for b in self.backends)

    def in_flight(self) -> dict[str, int]:
        """Calls this worker has open on each Triton."""
        return {b.url: n for b, n in self._in_flight.items()}

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self.backends))

    def _pick(self, tried: set[TritonBackend]) -> TritonBackend:
        start = next(self._turn) % len(self.backends)
        order = self.backends[start:] + self.backends[:start]
        now = time.monotonic()
        untried = [b for b in order if b not in tried]
        healthy = [b for b in untried if self._cooling_until[b] <= now] or untried
        return min(healthy, key=self._in_flight.__getitem__)

    async def infer(self, model: str, payload: bytes, *, log_id: str, seconds: float,
                    parameters: dict[str, bool | int | str] | None = None) -> TritonOutput:
        """Run `model` on one request within `seconds` on the least busy Triton, then on the others while
        Triton is unavailable; raise a `gateway.errors` exception on any failure."""
        deadline = time.monotonic() + seconds
        tried: set[TritonBackend] = set()
        while True:
            backend = self._pick(tried)
            tried.add(backend)
            self._in_flight[backend] += 1
            try:
                return await backend.infer(model, payload, log_id=log_id, seconds=deadline - time.monotonic(),
                                           parameters=parameters)
            except TritonUnavailable:
                self._cooling_until[backend] = time.monotonic() + COOLDOWN
                if len(tried) == len(self.backends):
                    raise
                log.warning("Triton at %s is unavailable; request %s goes to another", backend.url, log_id)
            finally:
                self._in_flight[backend] -= 1
