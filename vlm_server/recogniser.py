"""Prompt -> task, and the offline recogniser that answers each task from PP-OCR lines.

What the CPU profile cannot do, and answers honestly instead:
- formulas: the printed characters in `\\[ ... \\]`, not real LaTeX (no fractions, scripts or symbols);
- charts: the chart's printed text by rows (" | " between cells), never values read off bars or lines;
- seals and spotting: the text lines, without the curved-text reading or `<|LOC_n|>` boxes of 1.5+;
- tables: no spanning or multi-line cells (see `arrange`).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

import numpy as np

from vlm_server import arrange
from vlm_server.ppocr import PPOCR
from vlm_server.textlines import Line, read_lines


class Task(StrEnum):
    OCR = "ocr"
    TABLE = "table"
    FORMULA = "formula"
    CHART = "chart"
    SEAL = "seal"
    SPOTTING = "spotting"


PROMPTS: dict[str, Task] = {
    "OCR:": Task.OCR,
    "Table Recognition:": Task.TABLE,
    "Formula Recognition:": Task.FORMULA,
    "Chart Recognition:": Task.CHART,
    "Seal Recognition:": Task.SEAL,
    "Spotting:": Task.SPOTTING,
}


def task_of(prompt: str) -> Task:
    """The task a PaddleOCR-VL prompt asks for; anything else is read as plain OCR."""
    return PROMPTS.get(prompt.strip(), Task.OCR)


class Recogniser(Protocol):
    """What the server needs from a backend: blocking, called from worker threads."""

    def recognise(self, image: np.ndarray, task: Task) -> str:
        """Answer for an RGB uint8 image (H, W, 3)."""
        ...


ANSWERS: dict[Task, Callable[[list[Line]], str]] = {
    Task.OCR: arrange.paragraphs,
    Task.TABLE: arrange.otsl,
    Task.FORMULA: arrange.formula,
    Task.CHART: arrange.chart_rows,
    Task.SEAL: arrange.plain_lines,
    Task.SPOTTING: arrange.plain_lines,
}


class OcrRecogniser:
    """PP-OCRv4 (ONNX, CPU) standing in for PaddleOCR-VL-0.9B."""

    def __init__(self, threads: int = 0) -> None:
        self._ocr = PPOCR(threads)

    def recognise(self, image: np.ndarray, task: Task) -> str:
        bgr = np.ascontiguousarray(image[..., ::-1])
        return ANSWERS[task](read_lines(self._ocr, bgr))
