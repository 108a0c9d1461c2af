"""Prompt, send/keep decision and pixel limits per block label."""

from __future__ import annotations

import pytest

from docengine.errors import InvalidInputError
from docengine.recognition import prompts


@pytest.mark.parametrize(("label", "chart", "seal", "prompt"), [
    ("text", False, False, "OCR:"),
    ("paragraph_title", False, False, "OCR:"),
    ("table", False, False, "Table Recognition:"),
    ("display_formula", False, False, "Formula Recognition:"),
    ("inline_formula", False, False, "Formula Recognition:"),
    ("formula", False, False, "Formula Recognition:"),
    ("formula_number", False, False, "OCR:"),
    ("chart", True, False, "Chart Recognition:"),
    ("chart", False, False, "OCR:"),
    ("seal", False, True, "Seal Recognition:"),
    ("seal", False, False, "OCR:"),
    ("spotting", False, False, "Spotting:"),
    ("ocr", False, False, "OCR:"),
    ("image", False, False, "OCR:"),
])
def test_prompt_per_label(label: str, chart: bool, seal: bool, prompt: str) -> None:
    kind = prompts.task_kind(label, use_chart_recognition=chart, use_seal_recognition=seal)
    assert prompts.PROMPTS[kind] == prompt


def test_pictures_charts_and_seals_stay_unsent_unless_asked_for() -> None:
    off = prompts.unsent_labels(use_chart_recognition=False, use_seal_recognition=False,
                                use_ocr_for_image_block=False)
    assert off == {"image", "header_image", "footer_image", "chart", "seal"}
    on = prompts.unsent_labels(use_chart_recognition=True, use_seal_recognition=True,
                               use_ocr_for_image_block=True)
    assert on == frozenset()
    # reading image blocks does not read charts or seals
    ocr_images = prompts.unsent_labels(use_chart_recognition=False, use_seal_recognition=False,
                                       use_ocr_for_image_block=True)
    assert ocr_images == {"chart", "seal"}


def test_image_like_labels_include_charts_only_when_charts_are_not_read() -> None:
    assert prompts.image_like_labels(use_chart_recognition=False) == {
        "image", "header_image", "footer_image", "seal", "chart"}
    assert "chart" not in prompts.image_like_labels(use_chart_recognition=True)
    assert "seal" in prompts.image_like_labels(use_chart_recognition=True)


def test_pixel_defaults() -> None:
    for kind in ("ocr", "table", "chart", "formula", "seal"):
        assert prompts.pixel_range(kind, min_pixels=None, max_pixels=None, extra=None) == (112_896, 1_003_520)


def test_per_category_pixels_from_extra_args() -> None:
    extra = {"table_max_pixels": 2_000_000, "formula_min_pixels": 50_000, "max_pixels": 800_000}
    assert prompts.pixel_range("table", min_pixels=None, max_pixels=None, extra=extra) == (112_896, 2_000_000)
    assert prompts.pixel_range("formula", min_pixels=None, max_pixels=None, extra=extra) == (50_000, 800_000)
    assert prompts.pixel_range("ocr", min_pixels=None, max_pixels=None, extra=extra) == (112_896, 800_000)


def test_request_pixels_override_every_category() -> None:
    extra = {"table_max_pixels": 2_000_000, "table_min_pixels": 200_000}
    got = prompts.pixel_range("table", min_pixels=100_000, max_pixels=500_000, extra=extra)
    assert got == (100_000, 500_000)


def test_spotting_pixels_are_fixed() -> None:
    got = prompts.pixel_range("spotting", min_pixels=1000, max_pixels=2000, extra={"max_pixels": 5})
    assert got == (112_896, 1_605_632)


@pytest.mark.parametrize("value", ["big", -5, 0, True, 1.5])
def test_bad_extra_pixels_are_refused(value: object) -> None:
    with pytest.raises(InvalidInputError):
        prompts.pixel_range("ocr", min_pixels=None, max_pixels=None, extra={"ocr_max_pixels": value})


def test_min_above_max_after_resolution_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="table"):
        prompts.pixel_range("table", min_pixels=None, max_pixels=None, extra={"table_min_pixels": 2_000_000})
