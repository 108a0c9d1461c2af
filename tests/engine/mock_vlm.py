"""A mocked OpenAI-compatible VLM server (respx) and what the VLM client tests check with it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import httpx
import numpy as np

from docengine.recognition.client import VLMClient
from docengine.types import VLMTask

URL_A = "http://vlm-a:8118"
URL_B = "http://vlm-b:8118"
MODEL = "PaddleOCR-VL-1.6-0.9B"

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
    assert client.owners() == 0     # no owner's state is kept once its work is over
    assert all(n == 0 for n in client.caller.outstanding().values())
