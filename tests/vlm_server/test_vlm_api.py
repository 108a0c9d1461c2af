"""The OpenAI-compatible surface: shapes the client parses, and OpenAI-style errors for bad requests."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from devkit.documents import TITLE
from devkit.pages import Crop
from devkit.servers import serve_in_thread
from tests.vlm_server.conftest import MODEL, chat, data_url
from vlm_server.app import create_app
from vlm_server.recogniser import OcrRecogniser, Task
from vlm_server.settings import VLMServerSettings


def body(url: str, prompt: str = "OCR:", **extra) -> dict:
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": prompt}]
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def assert_error(response: httpx.Response, status: int, *, mentions: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == status and isinstance(error["type"], str)
    assert mentions in error["message"], error["message"]
    return error


def test_health(server: str) -> None:
    assert httpx.get(server + "/health").status_code == 200


def test_models_lists_the_served_name(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_completion_has_the_shape_the_client_parses(
    client: openai.OpenAI, sample_crops: dict[str, Crop]
) -> None:
    response = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "ignored"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_url(sample_crops[TITLE].jpeg)}},
                    {"type": "text", "text": "OCR:"},
                ],
            },
        ],
        temperature=0,
        top_p=0.9,
        max_tokens=256,
        stream=False,
        extra_body={"mm_processor_kwargs": {"min_pixels": 112_896, "max_pixels": 1_003_520}, "top_k": 1},
    )
    assert response.object == "chat.completion" and response.id.startswith("chatcmpl-")
    assert response.model == MODEL
    (choice,) = response.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert (choice.message.content or "").replace(" ", "") == TITLE.replace(" ", "")
    usage = response.usage
    assert usage is not None and usage.prompt_tokens > 144  # at least min_pixels' worth of image tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_wrong_model_is_404_like_vllm(client: openai.OpenAI, sample_crops: dict[str, Crop]) -> None:
    with pytest.raises(openai.NotFoundError, match="The model `PaddleOCR-VL-0.9B` does not exist."):
        client.chat.completions.create(
            model="PaddleOCR-VL-0.9B",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(b"x")}}]}
            ],
        )


@pytest.mark.parametrize(
    ("url", "mentions"),
    [
        ("data:image/png;base64,%%%not-base64%%%", "not valid base64"),
        (
            "data:image/png;base64," + base64.b64encode(b"just some text, not an image").decode(),
            "readable image",
        ),
        ("data:text/plain;base64," + base64.b64encode(b"hello").decode(), "not an image"),
        ("data:image/png,rawbytes", "base64"),
        ("https://example.com/page.png", "data URL"),
        ("data:image/png;base64,", "empty"),
    ],
)
def test_bad_images_are_400(server: str, url: str, mentions: str) -> None:
    assert_error(httpx.post(server + "/v1/chat/completions", json=body(url)), 400, mentions=mentions)


def test_a_truncated_image_is_400(server: str, sample_crops: dict[str, Crop]) -> None:
    cut = sample_crops[TITLE].jpeg[: len(sample_crops[TITLE].jpeg) // 3]
    assert_error(httpx.post(server + "/v1/chat/completions", json=body(data_url(cut))), 400, mentions="image")


def test_request_errors_are_400(server: str, sample_crops: dict[str, Crop]) -> None:
    url = server + "/v1/chat/completions"
    image = data_url(sample_crops[TITLE].jpeg)
    no_image = {"model": MODEL, "messages": [{"role": "user", "content": "OCR:"}]}
    assert_error(httpx.post(url, json=no_image), 400, mentions="no image")
    two = body(image)
    two["messages"][0]["content"].insert(0, {"type": "image_url", "image_url": {"url": image}})
    assert_error(httpx.post(url, json=two), 400, mentions="2 images")
    assert_error(httpx.post(url, json=body(image, stream=True)), 400, mentions="stream")
    assert_error(httpx.post(url, json=body(image, n=2)), 400, mentions="n=1")
    headers = {"content-type": "application/json"}
    assert_error(
        httpx.post(url, content=b'{"model": "x", "messages": [', headers=headers), 400, mentions="JSON"
    )
    error = assert_error(httpx.post(url, json={"model": MODEL}), 400, mentions="messages")
    assert error["param"] == "messages"
    bad_part = {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "audio", "audio": "x"}]}]}
    assert_error(httpx.post(url, json=bad_part), 400, mentions="messages")
    assert_error(httpx.post(url, json=body(image, temperature=-1)), 400, mentions="temperature")
    assert_error(httpx.get(server + "/v1/nothing"), 404, mentions="Not Found")


def test_oversized_images_are_400(recogniser: OcrRecogniser, sample_crops: dict[str, Crop]) -> None:
    settings = VLMServerSettings(_env_file=None, vlm_max_image_pixels=10_000)
    with serve_in_thread(create_app(settings, recogniser)) as url:
        response = httpx.post(url + "/v1/chat/completions", json=body(data_url(sample_crops[TITLE].jpeg)))
    assert_error(response, 400, mentions="more than the limit of 10000")


def test_transparent_png_is_read_on_white(client: openai.OpenAI, sample_crops: dict[str, Crop]) -> None:
    ink = 255 - sample_crops[TITLE].image.min(axis=2)  # black text on a transparent ground
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., 3] = ink
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    assert chat(client, buf.getvalue(), "OCR:", "image/png").replace(" ", "") == TITLE.replace(" ", "")


def wait_until(condition, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


class GatedRecogniser:
    """Holds every recognition until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def recognise(self, image: np.ndarray, task: Task) -> str:
        self.gate.wait(timeout=30)
        return f"{task.value} {image.shape[1]}x{image.shape[0]}"


async def test_past_the_queue_it_is_503_with_retry_after() -> None:
    settings = VLMServerSettings(_env_file=None, vlm_workers=1, vlm_queue_size=1, vlm_retry_after=7)
    backend = GatedRecogniser()
    app = create_app(settings, backend)
    buf = io.BytesIO()
    Image.new("RGB", (40, 20), "white").save(buf, format="PNG")
    request = body(data_url(buf.getvalue(), "image/png"))
    with serve_in_thread(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            held = [asyncio.create_task(http.post("/v1/chat/completions", json=request)) for _ in range(2)]
            assert await asyncio.to_thread(wait_until, lambda: app.state.admission.in_flight == 2)
            refused = await http.post("/v1/chat/completions", json=request)
            assert_error(refused, 503, mentions="busy")
            assert refused.headers["retry-after"] == "7"
            backend.gate.set()
            answers = await asyncio.gather(*held)
            assert [a.json()["choices"][0]["message"]["content"] for a in answers] == ["ocr 40x20"] * 2
            again = await http.post("/v1/chat/completions", json=request)
            assert again.status_code == 200 and app.state.admission.in_flight == 0
