"""Find and read the text lines of a crop: a single-line fast path, detection for the rest, and spaces.

A crop whose ink forms one band no taller than a few glyphs is one line: it goes straight to the
recogniser. Anything else is padded with its background (the detector drops lines that touch the
border) and run through the detector at the crop's own resolution, never blown up.
PP-OCRv4 often drops the space between English words; it is put back where the line image has a
blank gap between two characters that is wide for the line's height.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from contract.text import halfwidth_punctuation, is_cjk
from vlm_server.ppocr import PPOCR, LineText, crop_quad

MIN_CONTRAST = 40  # grey levels between ink and paper; below this the crop is blank
SINGLE_LINE_GLYPHS = 3.0  # a single line's ink is at most this many median glyph heights tall
LINE_MARGIN = 0.3  # margin around a single line, as a share of its height (PP-OCR crops have some)
DET_MAX_SIDE = 2000  # the detector input is shrunk beyond this, as RapidOCR does
DET_MIN_GLYPH = 10.0  # glyphs smaller than this (px) are enlarged for the detector
SPACE_GAP = 0.25  # a blank gap this wide (share of the line's ink height) between characters is a space
DIGIT_SPACE_GAP = 0.45  # between two digits: tabular figures leave wide gaps around narrow ones like "1"
NO_SPACE_BEFORE = frozenset(" .,;:!?)]}%")
NO_SPACE_AFTER = frozenset(" ([{")


@dataclass(frozen=True)
class Line:
    """A recognised text line and its box (x0, y0, x1, y1) in crop pixels."""

    box: tuple[float, float, float, float]
    text: str
    score: float

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2


def ink_mask(bgr: np.ndarray) -> np.ndarray:
    """Boolean mask of the ink: dark on light, or light on dark when that is the minority."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    if int(gray.max()) - int(gray.min()) < MIN_CONTRAST:
        return np.zeros(gray.shape, bool)
    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    mask = binary > 0
    return ~mask if mask.mean() > 0.5 else mask


def _glyphs(mask: np.ndarray) -> np.ndarray:
    """Bounding boxes (x, y, w, h) of the connected ink components that look like glyphs, not rules."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    _, _, w, h, area = stats[1:].T
    keep = (area >= 4) & (h >= 3) & (w <= 12 * h) & (h <= 20 * w)
    return stats[1:][keep, :4]


def _runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in a 1-D array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return edges[::2], edges[1::2]


def _bands(mask: np.ndarray, min_height: float) -> int:
    """Number of horizontal ink bands (rows with ink between blank rows) at least `min_height` tall."""
    starts, ends = _runs(mask.any(axis=1))
    return int(np.count_nonzero(ends - starts >= min_height))


def read_lines(ocr: PPOCR, bgr: np.ndarray) -> list[Line]:
    """All text lines of a crop, top to bottom, with spaces restored."""
    mask = ink_mask(bgr)
    glyphs = _glyphs(mask)
    if len(glyphs) == 0:
        return []
    glyph_h = float(np.median(glyphs[:, 3]))
    x0, y0 = glyphs[:, 0].min(), glyphs[:, 1].min()
    x1, y1 = (glyphs[:, 0] + glyphs[:, 2]).max(), (glyphs[:, 1] + glyphs[:, 3]).max()
    background = _background(bgr, mask)
    if y1 - y0 <= SINGLE_LINE_GLYPHS * glyph_h and _bands(mask[y0:y1], 0.3 * glyph_h) <= 1:
        m = max(2, round(LINE_MARGIN * (y1 - y0)))
        padded = cv2.copyMakeBorder(bgr, m, m, m, m, cv2.BORDER_CONSTANT, value=background)
        crop = padded[y0 : y1 + 2 * m, x0 : x1 + 2 * m]
        return _read([crop], [(x0 - m, y0 - m, x1 + m, y1 + m)], ocr)
    pad = max(16, round(2 * glyph_h))
    padded = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=background)
    scale = min(max(1.0, DET_MIN_GLYPH / glyph_h), DET_MAX_SIDE / max(padded.shape[:2]))
    quads = ocr.detect(padded, scale)
    crops = [crop_quad(padded, q) for q in quads]
    boxes = [(*(q.min(axis=0) - pad), *(q.max(axis=0) - pad)) for q in quads]
    return sorted(_read(crops, boxes, ocr), key=lambda line: (line.cy, line.box[0]))


def _background(bgr: np.ndarray, mask: np.ndarray) -> tuple[int, int, int]:
    paper = bgr[~mask]
    if len(paper) == 0:
        return (255, 255, 255)
    b, g, r = np.median(paper, axis=0)
    return (int(b), int(g), int(r))


def _read(crops: list[np.ndarray], boxes: list[tuple[float, ...]], ocr: PPOCR) -> list[Line]:
    texts = ocr.recognise(crops)
    lines = []
    for crop, box, rec in zip(crops, boxes, texts, strict=True):
        rec = LineText(halfwidth_punctuation(rec.text), rec.score, rec.char_x)
        text = restore_spaces(rec, ink_mask(crop)).strip()
        if text:
            x0, y0, x1, y1 = (float(v) for v in box)
            lines.append(Line((x0, y0, x1, y1), text, rec.score))
    return lines


def restore_spaces(rec: LineText, mask: np.ndarray) -> str:
    """Put a space between two characters whose line image has a wide blank gap between them."""
    if len(rec.text) < 2 or not mask.any():
        return rec.text
    top, bottom = _tallest_band(mask)
    blank = ~mask[top:bottom].any(axis=0)
    out = [rec.text[0]]
    for i in range(1, len(rec.text)):
        a, b = rec.text[i - 1], rec.text[i]
        if a not in NO_SPACE_AFTER and b not in NO_SPACE_BEFORE and not (is_cjk(a) or is_cjk(b)):
            lo, hi = int(rec.char_x[i - 1]), int(rec.char_x[i])
            share = DIGIT_SPACE_GAP if a.isdigit() and b.isdigit() else SPACE_GAP
            if _longest_run(blank[lo:hi]) >= share * (bottom - top):
                out.append(" ")
        out.append(b)
    return "".join(out)


def _tallest_band(mask: np.ndarray) -> tuple[int, int]:
    """Rows [top, bottom) of the tallest run of inked rows: the line itself, not bits of its neighbours."""
    starts, ends = _runs(mask.any(axis=1))
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k])


def _longest_run(flags: np.ndarray) -> int:
    starts, ends = _runs(flags)
    return int((ends - starts).max()) if len(starts) else 0
