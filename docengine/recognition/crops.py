"""Block images as the VLM should see them: cropped, masked, tightened, tokenised, enlarged or stacked.

All images are RGB `uint8` (H, W, 3); boxes are page pixels (x1, y1, x2, y2). Every function returns a new
array and leaves its input alone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

WHITE = 255
MIN_FIGURE_SIDE = 25        # smaller figures cannot carry a readable token
SPOTTING_UPSCALE_BELOW = 1500


def int_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """Truncate to int (as the reference does) and clip to the page."""
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    x1, x2 = min(max(x1, 0), width), min(max(x2, 0), width)
    y1, y2 = min(max(y1, 0), height), min(max(y2, 0), height)
    return x1, y1, max(x1, x2), max(y1, y2)


def crop(page: np.ndarray, box: Sequence[float],
         polygon: Sequence[Sequence[float]] | None = None) -> np.ndarray:
    """The box's pixels; with a polygon, everything outside it is white so neighbours do not leak in."""
    height, width = page.shape[:2]
    x1, y1, x2, y2 = int_box(box, width, height)
    out = page[y1:y2, x1:x2].copy()
    if polygon is not None and len(polygon) >= 3 and out.size:
        mask = np.zeros(out.shape[:2], dtype=np.uint8)
        points = np.asarray(polygon, dtype=np.float64).astype(np.int32) - np.array([x1, y1], dtype=np.int32)
        cv2.fillPoly(mask, [points.reshape(-1, 1, 2)], (1,))
        out[mask == 0] = WHITE
    return out


def tight_formula_crop(image: np.ndarray) -> np.ndarray:
    """Cut a formula to the bounding rectangle of its ink: the model reads formulas best without margins.

    Ink is what stays below 200 after stretching the grey levels to 0..255. Without ink, or when the ink
    rectangle is 2 px or thinner, the crop is returned unchanged.
    """
    if image.size == 0:
        return image.copy()
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    low, high = int(gray.min()), int(gray.max())
    if low == high:
        return image.copy()
    stretched = ((gray.astype(np.float64) - low) / (high - low) * 255).astype(np.uint8)
    _, ink = cv2.threshold(stretched, 200, 255, cv2.THRESH_BINARY_INV)
    points = cv2.findNonZero(ink)
    if points is None:
        return image.copy()
    x, y, w, h = cv2.boundingRect(points)
    if w <= 2 or h <= 2:
        return image.copy()
    return image[y:y + h, x:x + w].copy()


def figure_token_numbers(count: int) -> list[int]:
    """The numbers n of the `[Fn]` tokens for a page's figures, in figure order.

    Digits 0, 1 and 9 are left out (they read like O, l and g), and the order is a fixed shuffle, both as in
    the reference pipeline, so that the model sees the tokens it was trained on.
    """
    numbers: list[int] = []
    n = 0
    while len(numbers) < count:
        if not set(str(n)) & {"0", "1", "9"}:
            numbers.append(n)
        n += 1
    random.Random(1024).shuffle(numbers)
    return numbers


def paint_token(image: np.ndarray, box: Sequence[int], token: str) -> np.ndarray:
    """White out `box` (crop pixels) and write `token` centred in black, sized to 90% of the short side."""
    out = image.copy()
    x1, y1, x2, y2 = (int(v) for v in box)
    cv2.rectangle(out, (x1, y1), (x2, y2), (WHITE, WHITE, WHITE), thickness=-1)
    side = min(x2 - x1, y2 - y1) * 0.9
    font = cv2.FONT_HERSHEY_SIMPLEX
    (unit_w, unit_h), _ = cv2.getTextSize(token, font, 1.0, 1)
    scale = min(max(side / max(unit_w, unit_h, 1), 0.2), 10.0)
    thickness = max(1, int(scale * 4))
    (text_w, text_h), _ = cv2.getTextSize(token, font, scale, thickness)
    origin = (x1 + (x2 - x1 - text_w) // 2, y1 + (y2 - y1 + text_h) // 2)
    cv2.putText(out, token, origin, font, scale, (0, 0, 0), thickness, lineType=cv2.LINE_AA)
    return out


def tokenize_figures(
    table: np.ndarray, table_box: Sequence[int], figures: Sequence[tuple[Sequence[int], str]],
) -> tuple[np.ndarray, dict[str, str], list[int]]:
    """Replace the figures inside a table crop by `[Fn]` tokens, so the table model can place them in cells.

    `figures` are the page's figure boxes (int page pixels) with their image paths, in page order.
    Returns the new crop, token -> image path, and the indexes of the figures lying inside the table (those
    leave the page's block list, small ones included, even though only figures of 25 px and more get a token).
    """
    tx1, ty1, tx2, ty2 = table_box
    numbers = figure_token_numbers(len(figures))
    tokens: dict[str, str] = {}
    inside: list[int] = []
    for i, (box, path) in enumerate(figures):
        fx1, fy1, fx2, fy2 = box
        if not (fx1 >= tx1 and fy1 >= ty1 and fx2 <= tx2 and fy2 <= ty2):
            continue
        inside.append(i)
        if min(fx2 - fx1, fy2 - fy1) < MIN_FIGURE_SIDE:
            continue
        token = f"[F{numbers[i]}]"
        table = paint_token(table, (fx1 - tx1, fy1 - ty1, fx2 - tx1, fy2 - ty1), token)
        tokens[token] = path
    return table, tokens, inside


def upscale_for_spotting(image: np.ndarray) -> np.ndarray:
    """Double small crops (both sides under 1500 px) with Lanczos: spotting needs sharp small text."""
    height, width = image.shape[:2]
    if not (0 < width < SPOTTING_UPSCALE_BELOW and 0 < height < SPOTTING_UPSCALE_BELOW):
        return image.copy()
    return np.asarray(Image.fromarray(image).resize((width * 2, height * 2), Image.Resampling.LANCZOS))


def stack_vertically(images: Sequence[np.ndarray], aligns: Sequence[str]) -> np.ndarray:
    """Stack crops top to bottom on white; `aligns[i]` places image i+1 against what is stacked so far.

    Each step aligns the stack and the next image left, right or centre (the stack moves as a whole), so
    a merged paragraph looks like one block of text.
    """
    if len(aligns) != len(images) - 1:
        raise ValueError("one alignment per joint: len(aligns) must be len(images) - 1")
    stacked = images[0].copy()
    for image, align in zip(images[1:], aligns, strict=True):
        width = max(stacked.shape[1], image.shape[1])
        canvas = np.full((stacked.shape[0] + image.shape[0], width, 3), WHITE, dtype=np.uint8)
        top_x, bottom_x = _offset(align, width, stacked.shape[1]), _offset(align, width, image.shape[1])
        canvas[:stacked.shape[0], top_x:top_x + stacked.shape[1]] = stacked
        canvas[stacked.shape[0]:, bottom_x:bottom_x + image.shape[1]] = image
        stacked = canvas
    return stacked


def _offset(align: str, width: int, inner: int) -> int:
    if align == "left":
        return 0
    if align == "right":
        return width - inner
    return (width - inner) // 2
