"""One chat-completions call for one block, to whichever of the VLM servers is least busy, with retries.

The body is built the way PaddleX sends it to vLLM (a JPEG `data:` URL and the task prompt). The call goes to
the URL with the fewest outstanding calls, skipping for `failure_cooldown` seconds a URL that failed (unless
all did). Connection errors, connect timeouts, 429 and 503 are retried with short jittered backoff; anything
else fails the call with an `EngineError` that says which server and why.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import json
import logging
import random
import time
from typing import Any

import httpx
import numpy as np
from PIL import Image

from contract.urls import vlm_base_urls
from docengine.errors import VLMBadResponseError, VLMUnavailableError
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


class VLMCaller:
    """Calls to one or more OpenAI-compatible VLM servers: URL choice, timeouts and retries."""

    def __init__(self, urls: list[str], model: str, *, timeout: float = 600, retries: int = 2,
                 failure_cooldown: float = 10, backoff: float = 0.25, max_connections: int = 200,
                 http: httpx.AsyncClient | None = None) -> None:
        if not urls:
            raise ValueError("at least one VLM URL is needed")
        self.urls = list(vlm_base_urls(urls))
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.failure_cooldown = failure_cooldown
        self.backoff = backoff
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections))
        self._outstanding = dict.fromkeys(self.urls, 0)
        self._cooling_until = dict.fromkeys(self.urls, 0.0)
        self.calls_total = 0       # HTTP attempts made
        self.retries_total = 0     # of which retries

    def outstanding(self) -> dict[str, int]:
        """HTTP requests open per VLM URL."""
        return dict(self._outstanding)

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def call(self, task: VLMTask) -> str:
        """The VLM's text for one task (JPEG encoding and serialising run in a worker thread)."""
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
