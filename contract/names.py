"""Names every tier agrees on: PaddleOCR-VL releases, their served VLM models, and the HPS wire's names."""

from __future__ import annotations

from typing import Literal

PipelineName = Literal["PaddleOCR-VL", "PaddleOCR-VL-1.5", "PaddleOCR-VL-1.6"]
DEFAULT_PIPELINE: PipelineName = "PaddleOCR-VL-1.6"   # PaddleOCR's Job API client defaults to it too

# The VLM model each release serves (vLLM's --served-model-name, and the recogniser's /v1/models).
SERVED_MODEL_NAMES: dict[str, str] = {
    "PaddleOCR-VL": "PaddleOCR-VL-0.9B",
    "PaddleOCR-VL-1.5": "PaddleOCR-VL-1.5-0.9B",
    "PaddleOCR-VL-1.6": "PaddleOCR-VL-1.6-0.9B",
}

# Triton models, one per route, and their tensors: the request's JSON in, the response envelope out, and its
# HTTP status beside it so that the gateway never parses a (possibly huge) body to learn the status.
LAYOUT_PARSING = "layout-parsing"
RESTRUCTURE_PAGES = "restructure-pages"
MODELS = (LAYOUT_PARSING, RESTRUCTURE_PAGES)
INPUT, OUTPUT, STATUS = "input", "output", "status"

# PaddleOCR's asynchronous Job API: its routes answer in its own envelope, `{code, msg, data}`.
JOB_API_PREFIX = "/api/v2/ocr/"
