"""One recogniser (ONNX models loaded once) and one real server on a loopback port for the whole session."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import openai
import pytest

from devkit.documents import sample_pdf
from devkit.pages import Crop, block_crops, typical_page
from devkit.servers import serve_in_thread
from vlm_server.app import create_app
from vlm_server.recogniser import OcrRecogniser
from vlm_server.settings import VLMServerSettings

MODEL = "PaddleOCR-VL-1.6-0.9B"


@pytest.fixture(scope="session")
def recogniser() -> OcrRecogniser:
    return OcrRecogniser(threads=1)


@pytest.fixture(scope="session")
def server(recogniser: OcrRecogniser) -> Iterator[str]:
    settings = VLMServerSettings(
        _env_file=None, vlm_model_name="", pipeline_name="PaddleOCR-VL-1.6", vlm_workers=2
    )
    with serve_in_thread(create_app(settings, recogniser)) as url:
        yield url


@pytest.fixture(scope="session")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key="EMPTY", max_retries=0, timeout=60)


@pytest.fixture(scope="session")
def sample_crops() -> dict[str, Crop]:
    """The sample page's crops by their text (table: "table")."""
    return {("table" if c.kind == "table" else c.truth): c for c in block_crops(sample_pdf(1)[0])}


@pytest.fixture(scope="session")
def paragraph_crops() -> list[Crop]:
    """Multi-line paragraphs of the full text page (the first four: they differ; the rest repeat them)."""
    return [c for c in block_crops(typical_page()) if c.kind == "text"][1:5]


def data_url(data: bytes, media_type: str = "image/jpeg") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def chat(client: openai.OpenAI, image: bytes, prompt: str, media_type: str = "image/jpeg") -> str:
    """One request shaped like PaddleX's: image first, then the prompt; the pipeline's sampling fields."""
    response = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_url(image, media_type)}},
                    {"type": "text", "text": prompt},
                ],
            }
        ],
        temperature=0,
        max_completion_tokens=4096,
        extra_body={
            "skip_special_tokens": True,
            "repetition_penalty": 1.0,
            "mm_processor_kwargs": {"min_pixels": 112_896, "max_pixels": 1_003_520},
        },
    )
    return response.choices[0].message.content or ""
