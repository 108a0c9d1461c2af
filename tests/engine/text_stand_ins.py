"""What the text-layer and recovery tests share: a layout stand-in that finds exactly the regions it is told
(so that a missed block is missed for sure), the real CPU recogniser run in process and counting its calls,
and the words of an answer."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

import numpy as np

from contract.models import LayoutParsingRequest
from devkit.documents import b64, words_of
from docengine.layout.labels import LABEL_IDS
from docengine.pipeline import Engine
from docengine.settings import EngineSettings
from docengine.types import Detection, VLMTask
from vlm_server.recogniser import OcrRecogniser, task_of

SCALE = 2.0   # the engine's render scale: pt -> page pixels
TAG = re.compile(r"<[^>]+>")


class Regions:
    """Layout stand-in: the given (label, box in pt) regions on every page, in the given order."""

    def __init__(self, regions: list[tuple[str, tuple[float, float, float, float]]]) -> None:
        self.regions = regions

    def detect(self, pages: list[np.ndarray]) -> list[list[Detection]]:
        return [[Detection(LABEL_IDS[label], 0.9, tuple(v * SCALE for v in box), order_key=float(n))  # type: ignore[arg-type]
                 for n, (label, box) in enumerate(self.regions)] for _ in pages]


_RECOGNISER: OcrRecogniser | None = None


class LocalRecogniser:
    """The CPU recogniser (PP-OCR) answering the engine's tasks in process; `calls` counts them."""

    def __init__(self) -> None:
        global _RECOGNISER
        _RECOGNISER = _RECOGNISER or OcrRecogniser()
        self.calls = 0
        self.failures_total = self.in_flight = 0

    async def recognize(self, owner: str, tasks: list[VLMTask], background: bool = False) -> list[str]:
        self.calls += len(tasks)
        assert _RECOGNISER is not None
        return [await asyncio.to_thread(_RECOGNISER.recognise, t.image, task_of(t.prompt)) for t in tasks]

    def queued(self) -> int:
        return 0

    def owners(self) -> int:
        return 0

    async def aclose(self) -> None:
        pass


def settings(**overrides: Any) -> EngineSettings:
    values: dict[str, Any] = dict(profile="gpu", layout_batch_size=1, pdf_render_scale=SCALE)
    values.update(overrides)
    return EngineSettings(_env_file=None, **values)


async def parse(file: bytes, regions: list[tuple[str, tuple[float, float, float, float]]], *,
                file_type: int = 0, engine_settings: EngineSettings | None = None,
                **fields: Any) -> tuple[dict[str, Any], int]:
    """The engine's answer for `file` with layout finding only `regions`, and the recogniser calls made."""
    vlm = LocalRecogniser()
    engine = Engine(engine_settings or settings(), detector=Regions(regions), vlm=vlm)  # type: ignore[arg-type]
    try:
        request = LayoutParsingRequest(file=b64(file), fileType=file_type, visualize=False, **fields)
        return await engine.parse(request, "test"), vlm.calls
    finally:
        await engine.aclose()


def blocks(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for page in answer["layoutParsingResults"] for b in page["prunedResult"]["parsing_res_list"]]


def answer_words(answer: dict[str, Any]) -> Counter[str]:
    """The words of every block; table cells are words of their own."""
    return Counter(words_of(" ".join(TAG.sub(" ", b["block_content"]) for b in blocks(answer))))
