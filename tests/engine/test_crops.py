"""Block images for the VLM: crop, polygon mask, formula tight crop, figure tokens, upscale, stacking."""

from __future__ import annotations

import numpy as np
import pytest

from devkit.documents import render_page, sample_pdf
from docengine.recognition import crops


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    pdf, _ = sample_pdf(1)
    return render_page(pdf)


def gradient(height: int = 200, width: int = 300) -> np.ndarray:
    """An image where every pixel is distinct enough to tell where a crop came from."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs % 256, ys % 256, (xs + ys) % 256], axis=-1).astype(np.uint8)


def test_crop_truncates_to_int_and_copies() -> None:
    image = gradient()
    out = crops.crop(image, [10.7, 20.2, 110.9, 70.5])
    assert out.shape == (50, 100, 3)
    assert np.array_equal(out, image[20:70, 10:110])
    out[:] = 0
    assert image[20:70, 10:110].any()


def test_crop_is_clipped_to_the_page() -> None:
    image = gradient()
    assert crops.crop(image, [-20, -5, 350, 90]).shape == (90, 300, 3)
    assert crops.int_box([-20, -5, 350, 90], 300, 200) == (0, 0, 300, 90)
    assert crops.crop(image, [400, 10, 500, 20]).size == 0


def test_polygon_masks_outside_white() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    triangle = [[10, 10], [90, 10], [10, 90]]
    out = crops.crop(image, [10, 10, 90, 90], triangle)
    assert out.shape == (80, 80, 3)
    assert (out[2, 2] == 0).all()          # near the right angle: inside
    assert (out[75, 75] == 255).all()      # far corner: outside
    assert (out[70, 5] == 0).all()         # along the left edge: inside
    assert (out[5, 70] == 0).all()         # along the top edge: inside
    assert (out[60, 60] == 255).all()


def test_formula_tight_crop_on_a_rendered_formula(page: np.ndarray) -> None:
    # the "E = m c^2" line of the sample page, with generous white margins
    loose = crops.crop(page, [360, 470, 720, 540])
    tight = crops.tight_formula_crop(loose)
    ink = np.argwhere(loose.min(axis=2) < 200)
    (top, left), (bottom, right) = ink.min(axis=0), ink.max(axis=0)
    assert tight.shape[:2] == (bottom - top + 1, right - left + 1)
    assert tight.shape[0] < 30 and tight.shape[1] < 130
    assert np.array_equal(tight, loose[top:bottom + 1, left:right + 1])


def test_formula_tight_crop_keeps_crops_without_ink() -> None:
    blank = np.full((40, 60, 3), 255, dtype=np.uint8)
    assert np.array_equal(crops.tight_formula_crop(blank), blank)
    speck = blank.copy()
    speck[20, 30] = 0                      # a one-pixel rectangle is too thin to be a formula
    assert crops.tight_formula_crop(speck).shape == speck.shape


def test_figure_token_numbers_avoid_ambiguous_digits_and_are_stable() -> None:
    numbers = crops.figure_token_numbers(30)
    assert len(set(numbers)) == 30
    assert not any(set(str(n)) & {"0", "1", "9"} for n in numbers)
    assert numbers == crops.figure_token_numbers(30)
    assert sorted(numbers)[:7] == [2, 3, 4, 5, 6, 7, 8]
    assert numbers != sorted(numbers)      # shuffled, as the model saw them in training


def test_figures_inside_a_table_become_tokens() -> None:
    table = np.full((200, 400, 3), 120, dtype=np.uint8)
    table_box = (100, 100, 500, 300)
    figures = [
        ((0, 0, 50, 50), "imgs/outside.jpg"),          # not in the table
        ((150, 150, 250, 230), "imgs/big.jpg"),        # inside, tokenised
        ((400, 120, 420, 140), "imgs/small.jpg"),      # inside but under 25 px: absorbed, not painted
    ]
    out, tokens, inside = crops.tokenize_figures(table, table_box, figures)
    assert inside == [1, 2]
    numbers = crops.figure_token_numbers(3)
    assert tokens == {f"[F{numbers[1]}]": "imgs/big.jpg"}
    region = out[50:130, 50:150]               # the big figure, table-relative
    assert (region == 255).mean() > 0.5        # whited out ...
    assert (region.max(axis=2) < 100).any()    # ... with the token written in black
    assert (out[20:40, 300:320] == 120).all()  # the small one is left as it was
    assert (out[0:40, 0:40] == 120).all()
    assert (table == 120).all()                # input untouched


def test_spotting_upscale_only_for_small_crops() -> None:
    small = gradient(100, 200)
    big = crops.upscale_for_spotting(small)
    assert big.shape == (200, 400, 3)
    assert crops.upscale_for_spotting(np.zeros((1500, 100, 3), dtype=np.uint8)).shape == (1500, 100, 3)


def test_stack_vertically_aligns_on_white() -> None:
    top = np.zeros((10, 40, 3), dtype=np.uint8)
    bottom = np.full((5, 20, 3), 50, dtype=np.uint8)
    for align, x in (("left", 0), ("right", 20), ("center", 10)):
        out = crops.stack_vertically([top, bottom], [align])
        assert out.shape == (15, 40, 3)
        assert (out[:10] == 0).all()
        assert (out[10:, x:x + 20] == 50).all()
        assert (out[10:] == 255).sum() == 5 * 20 * 3
    narrow_first = crops.stack_vertically([bottom, top], ["right"])
    assert (narrow_first[:5, 20:] == 50).all() and (narrow_first[:5, :20] == 255).all()
    with pytest.raises(ValueError):
        crops.stack_vertically([top, bottom], [])
