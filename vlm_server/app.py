"""The offline recogniser's HTTP API: `/v1/chat/completions`, `/v1/models` and `/health`, like vLLM's.

Recognition is CPU-bound and blocking, so it runs in a fixed thread pool. Requests beyond the workers wait
in a bounded line; past it the server answers 503 with `Retry-After` at once instead of queueing without
end, which is what the engine's retry logic expects of an overloaded VLM server.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response

from vlm_server.errors import APIError, install_error_handlers
from vlm_server.images import BadImage, decode_data_url
from vlm_server.recogniser import OcrRecogniser, Recogniser, Task, task_of
from vlm_server.schemas import ChatCompletionRequest, Message, completion, visual_tokens
from vlm_server.settings import VLMServerSettings

log = logging.getLogger("vlm_server")


def _prompt_and_image(messages: list[Message]) -> tuple[str, str]:
    """The text and the one image data URL of the request (images may come in any user message)."""
    texts: list[str] = []
    images: list[str] = []
    for message in messages:
        if message.role != "user" or message.content is None:
            continue
        if isinstance(message.content, str):
            texts.append(message.content)
            continue
        for part in message.content:
            if part.type == "text":
                texts.append(part.text)
            else:
                images.append(part.image_url.url)
    if not images:
        raise APIError(
            400, "the request has no image: send one image_url part in the user message", param="messages"
        )
    if len(images) > 1:
        raise APIError(
            400, f"the request has {len(images)} images; this server reads one per request", param="messages"
        )
    return "".join(texts), images[0]


class Admission:
    """Counts the requests inside the server and refuses more than `capacity`. Event-loop use only."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.in_flight = capacity, 0

    def try_enter(self) -> bool:
        if self.in_flight >= self.capacity:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1


def create_app(settings: VLMServerSettings | None = None, recogniser: Recogniser | None = None) -> FastAPI:
    """The API around `recogniser` (default: PP-OCRv4 ONNX models, loaded now)."""
    settings = settings or VLMServerSettings()
    backend = recogniser or OcrRecogniser(threads=settings.ort_threads)
    model = settings.served_model_name
    pool = ThreadPoolExecutor(settings.vlm_workers, thread_name_prefix="recognise")
    admission = Admission(settings.vlm_workers + settings.vlm_queue_size)
    started = int(time.time())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="PaddleOCR-VL offline recogniser", lifespan=lifespan)
    app.state.admission = admission
    install_error_handlers(app)

    def work(url: str, task: Task, request: ChatCompletionRequest) -> tuple[str, int]:
        image = decode_data_url(url, settings.vlm_max_image_pixels)
        tokens = visual_tokens(image.shape[0], image.shape[1], request.mm_processor_kwargs)
        return backend.recognise(image, task), tokens

    @app.get("/health")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": model, "object": "model", "created": started, "owned_by": "vlm_server", "root": model}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: ChatCompletionRequest) -> dict[str, Any]:
        if request.model != model:
            raise APIError(404, f"The model `{request.model}` does not exist.", param="model")
        if request.stream:
            raise APIError(
                400, "streaming is not supported by this server: send stream=false", param="stream"
            )
        if request.n != 1:
            raise APIError(400, "only n=1 is supported", param="n")
        prompt, url = _prompt_and_image(request.messages)
        task = task_of(prompt)
        if not admission.try_enter():
            raise APIError(
                503,
                f"the server is busy: {admission.capacity} requests are already being served or waiting",
                headers={"Retry-After": str(settings.vlm_retry_after)},
            )
        try:
            loop = asyncio.get_running_loop()
            text, image_tokens = await loop.run_in_executor(pool, work, url, task, request)
        except BadImage as exc:
            raise APIError(400, str(exc), param="messages") from None
        finally:
            admission.leave()
        return completion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=model,
            content=text,
            prompt_tokens=image_tokens + len(prompt),
        )

    return app
