"""Which blocks go to the VLM, with which prompt and which image-size limits.

The VLM is one model steered by a short task prompt, so the block label alone decides the task. Image-like
blocks are kept as pictures unless the request asks for them to be read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from docengine.errors import InvalidInputError
from docengine.layout.labels import IMAGE_LABELS  # pictures: never read unless `useOcrForImageBlock` is on

PROMPTS: dict[str, str] = {
    "ocr": "OCR:",
    "table": "Table Recognition:",
    "formula": "Formula Recognition:",
    "chart": "Chart Recognition:",
    "seal": "Seal Recognition:",
    "spotting": "Spotting:",
}

DEFAULT_MIN_PIXELS = 112_896      # 144 visual tokens of 28x28
DEFAULT_MAX_PIXELS = 1_003_520    # 1280 visual tokens
SPOTTING_PIXELS = (112_896, 1_605_632)   # fixed: spotting needs the detail whatever the request says


def task_kind(label: str, *, use_chart_recognition: bool, use_seal_recognition: bool) -> str:
    """The task a block label asks of the VLM: a key of `PROMPTS`; everything else is plain OCR."""
    if label == "table":
        return "table"
    if label == "chart" and use_chart_recognition:
        return "chart"
    if "formula" in label and label != "formula_number":
        return "formula"
    if label == "spotting":
        return "spotting"
    if label == "seal" and use_seal_recognition:
        return "seal"
    return "ocr"


def unsent_labels(*, use_chart_recognition: bool, use_seal_recognition: bool,
                  use_ocr_for_image_block: bool) -> frozenset[str]:
    """Labels kept as pictures, not sent to the VLM (also never merged with text)."""
    labels = set() if use_ocr_for_image_block else set(IMAGE_LABELS)
    if not use_chart_recognition:
        labels.add("chart")
    if not use_seal_recognition:
        labels.add("seal")
    return frozenset(labels)


def image_like_labels(*, use_chart_recognition: bool) -> frozenset[str]:
    """Labels whose crop is returned as a Markdown image (seals always; charts when not recognised)."""
    labels = set(IMAGE_LABELS) | {"seal"}
    if not use_chart_recognition:
        labels.add("chart")
    return frozenset(labels)


def pixel_range(kind: str, *, min_pixels: int | None, max_pixels: int | None,
                extra: Mapping[str, Any] | None) -> tuple[int, int]:
    """(min_pixels, max_pixels) for one task kind.

    Precedence: the request's `minPixels`/`maxPixels`, then `vlmExtraArgs` `<kind>_min_pixels`, then its plain
    `min_pixels`, then the defaults. Spotting is fixed.
    """
    if kind == "spotting":
        return SPOTTING_PIXELS
    extra = extra or {}
    low = _first(min_pixels, extra, (f"{kind}_min_pixels", "min_pixels"), DEFAULT_MIN_PIXELS)
    high = _first(max_pixels, extra, (f"{kind}_max_pixels", "max_pixels"), DEFAULT_MAX_PIXELS)
    if low > high:
        raise InvalidInputError(f"min_pixels ({low}) is greater than max_pixels ({high}) for {kind} blocks")
    return low, high


def _first(value: int | None, extra: Mapping[str, Any], keys: tuple[str, ...], default: int) -> int:
    if value is not None:
        return value
    for key in keys:
        found = extra.get(key)
        if found is None:
            continue
        if isinstance(found, bool) or not isinstance(found, int | float) or found <= 0 or found != int(found):
            raise InvalidInputError(f"vlmExtraArgs.{key} must be a positive integer")
        return int(found)
    return default
