"""Images that leave the engine: Base64 JPEG encoding and the visualisations of `outputImages`."""

from __future__ import annotations

import base64
import io
import random
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from docengine.types import LayoutBox

JPEG_QUALITY = 95  # what OpenCV's encoder uses by default, so sizes stay close to the upstream service

# One colour per PP-DocLayout class id (0..24); ids beyond wrap around.
_PALETTE: list[tuple[int, int, int]] = [
    (230, 25, 75), (60, 180, 75), (255, 145, 30), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 200, 220), (240, 50, 230), (130, 130, 0), (0, 128, 128),
    (170, 110, 40), (128, 0, 0), (100, 100, 255), (128, 128, 0), (0, 0, 128),
    (200, 80, 120), (110, 150, 60), (220, 40, 40), (90, 60, 160), (160, 100, 200),
    (200, 160, 0), (30, 144, 255), (34, 139, 34), (255, 99, 71), (75, 0, 130),
]


def fit_within(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (never upscale) so that the longest side is at most `max_side`, keeping the aspect ratio."""
    h, w = rgb.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return rgb
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def encode_jpeg_b64(rgb: np.ndarray, max_side: int | None = None) -> str:
    """An RGB (or grey) image as Base64 JPEG text, downscaled first to fit `max_side` when given."""
    image = Image.fromarray(np.ascontiguousarray(fit_within(rgb, max_side)))
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return base64.b64encode(buf.getvalue()).decode("ascii")


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _color(cls_id: int) -> tuple[int, int, int]:
    return _PALETTE[cls_id % len(_PALETTE)]


def draw_layout(page: np.ndarray, boxes: list[LayoutBox]) -> np.ndarray:
    """The page with each layout region shaded and outlined, tagged `label score`, and numbered in reading
    order. Regions with polygon points are drawn as polygons, others as rectangles. Returns a new RGB array.
    """
    base = Image.fromarray(np.ascontiguousarray(page)).convert("RGB")
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    shade = ImageDraw.Draw(overlay)
    width = base.width
    line = max(2, width // 600)
    tag_font = _font(max(10, int(0.011 * width)))
    order_font = _font(int(0.018 * width) + 2)

    for box in boxes:
        r, g, b = _color(box.cls_id)
        if box.polygon_points and len(box.polygon_points) >= 3:
            points = [(float(x), float(y)) for x, y in box.polygon_points]
            shade.polygon(points, fill=(r, g, b, 50), outline=(r, g, b, 255), width=line)
        else:
            x1, y1, x2, y2 = (float(v) for v in box.coordinate)
            shade.rectangle((x1, y1, x2, y2), fill=(r, g, b, 50), outline=(r, g, b, 255), width=line)

    image = Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")
    draw = ImageDraw.Draw(image)
    for box in boxes:
        x1, y1, x2, _ = (float(v) for v in box.coordinate)
        text = f"{box.label} {box.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=tag_font)
        tag_h = bottom - top + 4
        ty = y1 - tag_h if y1 >= tag_h else y1
        draw.rectangle((x1, ty, x1 + right - left + 4, ty + tag_h), fill=_color(box.cls_id))
        draw.text((x1 + 2 - left, ty + 2 - top), text, font=tag_font, fill=(255, 255, 255))
        if box.order is not None:
            size = order_font.size if isinstance(order_font, ImageFont.FreeTypeFont) else 12
            ox = x2 + 2 if width - x2 >= size else x2 - size * 1.1
            draw.text((ox, y1 - size // 2), str(box.order), font=order_font, fill=(255, 0, 0))
    return np.asarray(image)


def draw_spotting(page: np.ndarray, polys: Sequence[Sequence[Sequence[float]]],
                  texts: Sequence[str]) -> np.ndarray:
    """`spotting_res_img`, laid out as PaddleX's: the page with each spotted text's quad filled in its own
    colour (half transparent) on the left, and on the right a white page with each text written where it was
    found, its quad outlined in the same colour. Returns a new RGB array twice the page's width."""
    base = Image.fromarray(np.ascontiguousarray(page)).convert("RGB")
    width, height = base.size
    filled = base.copy()
    fill = ImageDraw.Draw(filled)
    written = Image.new("RGB", (width, height), (255, 255, 255))
    write = ImageDraw.Draw(written)
    colours = random.Random(0)   # the same colours for the same page, every time
    for poly, text in zip(polys, texts, strict=False):
        colour = (colours.randint(0, 255), colours.randint(0, 255), colours.randint(0, 255))
        points = [(float(x), float(y)) for x, y in poly]
        if len(points) < 3:
            continue
        fill.polygon(points, fill=colour)
        write.polygon(points, outline=colour, width=max(1, width // 600))
        xs, ys = [x for x, _ in points], [y for _, y in points]
        size = int(min(max(8, (max(ys) - min(ys)) * 0.8), 200))
        write.text((min(xs), min(ys)), text, font=_font(size), fill=(0, 0, 0))
    shown = Image.new("RGB", (2 * width, height), (255, 255, 255))
    shown.paste(Image.blend(base, filled, 0.5), (0, 0))
    shown.paste(written, (width, 0))
    return np.asarray(shown)


def draw_preprocessing(pages: Sequence[np.ndarray], captions: Sequence[str]) -> np.ndarray:
    """`preprocessed_img`, laid out as PaddleX's: the pages side by side on white (the page as it came, turned
    upright, flattened), each with its caption in a 25-pixel strip below. Returns a new RGB array."""
    height = max(p.shape[0] for p in pages)
    shown = Image.new("RGB", (sum(p.shape[1] for p in pages), height + 25), (255, 255, 255))
    draw = ImageDraw.Draw(shown)
    left = 0
    for page, caption in zip(pages, captions, strict=True):
        shown.paste(Image.fromarray(np.ascontiguousarray(page)).convert("RGB"), (left, 0))
        draw.text((left + 10, height + 2), caption, font=_font(18), fill=(0, 0, 0))
        left += page.shape[1]
    return np.asarray(shown)
