"""Chat-completions calls to the VLM server(s), one per block, shared fairly by all requests in the process.

One bound (`max_concurrency`) caps the calls in flight across every request. Waiting calls sit in one FIFO
queue per owner (a request) and are started round-robin between owners, an owner that has not been served
yet going first: a one-page request arriving behind a 30-page one gets the next free slot, where a plain
semaphore would make it wait for the whole document. One owner may hold at most `request_share` of the
slots, so that the next free slot is not the earliest a newcomer can start: a call in flight cannot be taken
back, and with the bound matched to the server's capacity a newcomer would wait up to one service time.

Each call JPEG-encodes its crop and serialises the body in a worker thread (`asyncio.to_thread`) once it holds
a slot, so that CPU work is bounded by the same limit and never blocks the event loop. It then goes to the
URL with the fewest outstanding calls, skipping for `failure_cooldown` seconds a URL that failed (unless all
did). Connection errors, connect timeouts, 429 and 503 are retried with short jittered backoff.

A failed call fails its owner's pending `recognize` calls at once and cancels the owner's other work; a
cancelled `recognize` drops its queued calls and cancels those in flight. Other owners never notice.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import io
import json
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from PIL import Image

from contract.urls import vlm_base_urls
from docengine.errors import CancelledRequestError, VLMBadResponseError, VLMUnavailableError
from docengine.settings import EngineSettings
from docengine.types import VLMTask

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
CONNECT_TIMEOUT = 10.0      # seconds; a server that does not accept a connection by then is down
MAX_RETRY_AFTER = 5.0       # seconds; a longer Retry-After is cut to this


def encode_image(image: np.ndarray) -> str:
    """The crop as a `data:` URL of a JPEG at PIL's default quality, as PaddleX sends it to vLLM."""
    pil = Image.fromarray(np.ascontiguousarray(image))
    if pil.mode != "RGB":
        pil = pil.convert("RGB")
    buf = io.BytesIO()
    pil.save(buf, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def build_request(model: str, task: VLMTask, image_url: str) -> dict[str, Any]:
    """The chat-completions body; the OpenAI SDK's `extra_body` fields sit at the top level."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_url}},
            {"type": "text", "text": task.prompt},
        ]}],
        "temperature": task.temperature,
        "max_completion_tokens": task.max_tokens,
        "skip_special_tokens": task.skip_special_tokens,
    }
    if task.top_p is not None:
        body["top_p"] = task.top_p
    if task.repetition_penalty is not None:
        body["repetition_penalty"] = task.repetition_penalty
    sizes = (("min_pixels", task.min_pixels), ("max_pixels", task.max_pixels))
    pixels = {k: v for k, v in sizes if v is not None}
    if pixels:
        body["mm_processor_kwargs"] = pixels
    return body


def _server_message(response: httpx.Response) -> str:
    """The error text of an OpenAI-style error body (`{"error": {"message"}}` or vLLM's `{"message"}`)."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if data.get("message"):
            return str(data["message"])
    return json.dumps(data)[:500]


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 0.0
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _completion_text(url: str, response: httpx.Response) -> str:
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise VLMBadResponseError(f"VLM server {url} returned an unusable completion "
                                  f"({type(exc).__name__}): {response.text[:200]!r}") from None
    if content is None:   # PaddleX reads a null content as empty text
        return ""
    if not isinstance(content, str):
        raise VLMBadResponseError(f"VLM server {url} returned non-text content: {str(content)[:200]!r}")
    return content


class _Retry(Exception):
    """An attempt that may be tried again: why, and how long the server asked us to wait."""

    def __init__(self, cause: str, wait: float = 0.0) -> None:
        super().__init__(cause)
        self.cause = cause
        self.wait = wait


@dataclass(eq=False)
class _Batch:
    """One `recognize` call: its texts fill in as its calls finish."""

    owner: str
    texts: list[str | None]
    done: asyncio.Future[list[str]]
    left: int

    def finish(self, index: int, text: str) -> None:
        if self.done.done():
            return
        self.texts[index] = text
        self.left -= 1
        if self.left == 0:
            self.done.set_result([t or "" for t in self.texts])


@dataclass(eq=False)
class _Job:
    batch: _Batch
    index: int
    task: VLMTask


@dataclass(eq=False)
class _Owner:
    """The work of one owner: its queue, its calls in flight and its open `recognize` calls."""

    name: str
    queue: deque[_Job] = field(default_factory=deque)
    running: dict[asyncio.Task[str], _Job] = field(default_factory=dict)
    batches: set[_Batch] = field(default_factory=set)
    served: bool = False


class VLMClient:
    """Fair, bounded, retrying client of one or more OpenAI-compatible VLM servers."""

    def __init__(self, urls: list[str], model: str, *, max_concurrency: int = 200, request_share: float = 1.0,
                 timeout: float = 600, retries: int = 2, failure_cooldown: float = 10, backoff: float = 0.25,
                 http: httpx.AsyncClient | None = None) -> None:
        if not urls:
            raise ValueError("at least one VLM URL is needed")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if not 0 < request_share <= 1:
            raise ValueError("request_share must be in (0, 1]")
        self.urls = list(vlm_base_urls(urls))
        self.model = model
        self.max_concurrency = max_concurrency
        self.max_per_owner = max(1, int(max_concurrency * request_share))
        self.timeout = timeout
        self.retries = retries
        self.failure_cooldown = failure_cooldown
        self.backoff = backoff
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency))
        self._owners: dict[str, _Owner] = {}
        self._fresh: deque[_Owner] = deque()    # owners with queued calls, never served yet: they go first
        self._ring: deque[_Owner] = deque()     # owners with queued calls, already served: round-robin
        self._capped: set[_Owner] = set()       # owners with queued calls and max_per_owner in flight
        self._in_flight = 0
        self._outstanding = dict.fromkeys(self.urls, 0)
        self._cooling_until = dict.fromkeys(self.urls, 0.0)
        self._closed = False
        self.calls_total = 0       # HTTP attempts made
        self.retries_total = 0     # of which retries
        self.failures_total = 0    # calls that failed for good

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> VLMClient:
        return cls(settings.vlm_urls, settings.served_model_name,
                   max_concurrency=settings.vlm_max_concurrency, request_share=settings.vlm_request_share,
                   timeout=settings.vlm_timeout,
                   retries=settings.vlm_retries, failure_cooldown=settings.vlm_failure_cooldown)

    # --- observability ------------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Calls holding a slot (encoding, waiting for the server, or between retries)."""
        return self._in_flight

    def queued(self, owner: str | None = None) -> int:
        """Calls waiting for a slot, of one owner or of all."""
        if owner is not None:
            state = self._owners.get(owner)
            return len(state.queue) if state else 0
        return sum(len(s.queue) for s in self._owners.values())

    def queued_by_owner(self) -> dict[str, int]:
        return {name: len(s.queue) for name, s in self._owners.items() if s.queue}

    def outstanding(self) -> dict[str, int]:
        """HTTP requests open per VLM URL."""
        return dict(self._outstanding)

    # --- public API ---------------------------------------------------------------------------------------

    async def recognize(self, owner: str, tasks: list[VLMTask]) -> list[str]:
        """The VLM's text for each task, in order. Raises the first failure of any of `owner`'s calls."""
        if self._closed:
            raise VLMUnavailableError("the VLM client is closed")
        if not tasks:
            return []
        batch = _Batch(owner, [None] * len(tasks), asyncio.get_running_loop().create_future(), len(tasks))
        state = self._owners.get(owner) or self._owners.setdefault(owner, _Owner(owner))
        state.batches.add(batch)
        was_idle = not state.queue
        state.queue.extend(_Job(batch, i, t) for i, t in enumerate(tasks))
        if was_idle:
            self._list(state)
        self._dispatch()
        try:
            return await batch.done
        finally:
            self._abandon(state, batch)

    def cancel(self, owner: str) -> None:
        """Drop `owner`'s queued calls and cancel those in flight; its `recognize` calls raise 499."""
        state = self._owners.get(owner)
        if state is not None:
            self._fail(state, CancelledRequestError(f"request {owner} was cancelled"))

    async def aclose(self) -> None:
        """Fail all pending work (503) and close the connection pool if this client made it."""
        self._closed = True
        for state in list(self._owners.values()):
            self._fail(state, VLMUnavailableError("the VLM client was closed"))
        running = [t for s in self._owners.values() for t in s.running]
        if running:
            await asyncio.wait(running)
        if self._own_http:
            await self._http.aclose()

    # --- scheduling ---------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start queued calls while slots are free: never-served owners first, then round-robin; an owner
        at its cap waits aside until one of its calls finishes."""
        while self._in_flight < self.max_concurrency and (self._fresh or self._ring):
            state = (self._fresh or self._ring).popleft()
            job = state.queue.popleft()
            state.served = True
            self._in_flight += 1
            task = asyncio.ensure_future(self._call(job.task))
            state.running[task] = job
            task.add_done_callback(functools.partial(self._finished, state))
            if state.queue:
                self._list(state)

    def _finished(self, state: _Owner, task: asyncio.Task[str]) -> None:
        """Release the slot, hand the text to its batch or fail the owner, and start what waits."""
        self._in_flight -= 1
        job = state.running.pop(task)
        if state in self._capped:
            self._capped.discard(state)
            self._list(state)
        exc = None if task.cancelled() else task.exception()   # always read, so asyncio never warns
        if job.batch.done.done():
            pass                            # its recognize is over (failed, cancelled): the outcome is moot
        elif task.cancelled():              # cancelled by someone else (e.g. loop shutdown): never hang
            self._fail(state, CancelledRequestError(f"a VLM call of request {state.name} was cancelled"))
        elif exc is not None:
            self.failures_total += 1
            self._fail(state, exc)
        else:
            job.batch.finish(job.index, task.result())
        self._forget_if_idle(state)
        self._dispatch()

    def _fail(self, state: _Owner, exc: BaseException) -> None:
        """Fail every open `recognize` of the owner with `exc` and stop all of its work."""
        for batch in state.batches:
            if not batch.done.done():
                batch.done.set_exception(exc)
        state.queue.clear()
        self._unlist(state)
        for task in state.running:
            task.cancel()

    def _abandon(self, state: _Owner, batch: _Batch) -> None:
        """A `recognize` call is over: drop what is left of its work."""
        state.batches.discard(batch)
        if any(job.batch is batch for job in state.queue):
            state.queue = deque(job for job in state.queue if job.batch is not batch)
            if not state.queue:
                self._unlist(state)
        for task, job in state.running.items():
            if job.batch is batch:
                task.cancel()
        self._forget_if_idle(state)

    def _list(self, state: _Owner) -> None:
        """Line up an owner with waiting calls for a slot: at the back of its ring, or aside at its cap."""
        if len(state.running) >= self.max_per_owner:
            self._capped.add(state)
        else:
            (self._ring if state.served else self._fresh).append(state)

    def _unlist(self, state: _Owner) -> None:
        self._capped.discard(state)
        for ring in (self._fresh, self._ring):
            if state in ring:
                ring.remove(state)

    def _forget_if_idle(self, state: _Owner) -> None:
        if not (state.queue or state.running or state.batches) and self._owners.get(state.name) is state:
            del self._owners[state.name]

    # --- one call -----------------------------------------------------------------------------------------

    async def _call(self, task: VLMTask) -> str:
        body = await asyncio.to_thread(self._encode_body, task)
        attempt = 0
        while True:
            url = self._pick_url()
            try:
                return await self._attempt(url, body)
            except _Retry as retry:
                if attempt >= self.retries:
                    raise VLMUnavailableError(
                        f"VLM server {url} unavailable after {attempt + 1} attempts: {retry.cause}") from None
                delay = max(self.backoff * 2 ** attempt * random.uniform(0.5, 1.5), retry.wait)
                log.warning("VLM call to %s failed (%s); retry %d in %.2f s",
                            url, retry.cause, attempt + 1, delay)
                attempt += 1
                self.retries_total += 1
                await asyncio.sleep(delay)

    def _encode_body(self, task: VLMTask) -> bytes:
        body = build_request(self.model, task, encode_image(task.image))
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    async def _attempt(self, url: str, body: bytes) -> str:
        """One HTTP request: the text, or `_Retry`, or a final `EngineError`."""
        self.calls_total += 1
        self._outstanding[url] += 1
        try:
            response = await asyncio.wait_for(
                self._http.post(url + CHAT_PATH, content=body, headers={"content-type": "application/json"}),
                self.timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
            self._cool_down(url)
            raise _Retry(f"cannot connect ({type(exc).__name__}: {exc})") from None
        except (TimeoutError, httpx.TimeoutException) as exc:
            self._cool_down(url)
            raise VLMUnavailableError(
                f"VLM server {url} did not answer within {self.timeout:g} s ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            self._cool_down(url)
            raise VLMUnavailableError(f"VLM server {url} failed: {type(exc).__name__}: {exc}") from None
        finally:
            self._outstanding[url] -= 1
        status = response.status_code
        if status == 200:
            self._cooling_until[url] = 0.0
            return _completion_text(url, response)
        message = _server_message(response)
        if status == 429:
            raise _Retry(f"HTTP 429: {message}", _retry_after(response))
        if status >= 500:
            self._cool_down(url)
            if status == 503:
                raise _Retry(f"HTTP 503: {message}", _retry_after(response))
            raise VLMUnavailableError(f"VLM server {url} failed with HTTP {status}: {message}")
        hint = ""
        if status == 404 or "does not exist" in message:
            hint = (f" (requested model {self.model!r}: HPS_VLM_MODEL_NAME must match the VLM server's "
                    "--served-model-name)")
        raise VLMBadResponseError(f"VLM server {url} refused the request with HTTP {status}: {message}{hint}")

    def _cool_down(self, url: str) -> None:
        self._cooling_until[url] = asyncio.get_running_loop().time() + self.failure_cooldown

    def _pick_url(self) -> str:
        """The healthy URL with the fewest outstanding calls (first on ties); any URL if none is healthy."""
        now = asyncio.get_running_loop().time()
        healthy = [u for u in self.urls if self._cooling_until[u] <= now] or self.urls
        return min(healthy, key=self._outstanding.__getitem__)
