"""Find and read the text lines of a crop: a single-line fast path, detection for the rest, and spaces.

A crop whose ink forms one band no taller than a few glyphs is one line: it goes straight to the
recogniser. Anything else is padded with its background (the detector drops lines that touch the
border) and run through the detector at the crop's own resolution, never blown up.
PP-OCRv4 often drops the space between English words; it is put back where the line image has a
blank gap between two characters that is wide for the line's height. The detector does not box dot
leaders (a table of contents' ". . . ." between a title and its page), so they are counted in the ink.
Two faults of a crop's lines are mended: glyphs outside every detected line get a second, closer look, and
the half of a neighbour's line that overlapping layout boxes let into the crop is left out.
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
MIN_LEFT_OUT_GLYPHS = 3  # fewer glyphs outside every line box are specks, bullets or stray marks
SECOND_LOOK_ZOOM = 2.0  # the detector finds small print beside larger text when it is enlarged
MIN_SECOND_LOOK_SCORE = 0.6  # what a second look reads less surely is taken for a picture's strokes
CUT_GLYPHS = 0.5  # a line at the crop's edge with this share of its glyphs cut by it may be a neighbour's
CUT_LINE = 0.65  # ... and its ink lower than this share of the others' (cut at its own baseline, a line of
#   its own: 0.75; half of a neighbour's line: 0.5)
LEADER_DOT = 0.3  # a leader dot is at most this share of its line's height, wide and tall
MIN_LEADER_DOTS = 3
LEADER_PITCH_SPREAD = 1.5  # the widest step between a leader's dots over the narrowest: leaders are even
NO_SPACE_BEFORE = frozenset(" .,;:!?)]}%")
NO_SPACE_AFTER = frozenset(" ([{")


@dataclass(frozen=True)
class Line:
    """A recognised text line and its box (x0, y0, x1, y1) in crop pixels."""

    box: tuple[float, float, float, float]
    text: str
    score: float
    leader: bool = False  # dot leaders, found in the ink (`leaders`), not read

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
    lines = _detect_and_read(ocr, bgr, background, glyph_h)
    lines += _second_look(ocr, bgr, background, glyph_h, glyphs, lines + leaders(lines, mask))
    lines = [ln for ln in lines if not _cut_by_the_edge(ln, lines, mask)]
    return sorted(lines + leaders(lines, mask), key=lambda line: (line.cy, line.box[0]))


def _cut_by_the_edge(line: Line, lines: list[Line], mask: np.ndarray) -> bool:
    """Whether `line` is the top or bottom half of a neighbouring block's line, which the crop takes in when
    layout boxes overlap (read, it is nonsense): most of its glyphs run off the crop's top or bottom edge,
    and its ink is lower than that of the crop's other lines. A tight box that clips a few ascenders or
    descenders of a line of its own is no such thing."""
    x0, y0, x1, y1 = (max(0, round(v)) for v in line.box)
    if (y0 > 0 and y1 < mask.shape[0]) or len(lines) < 2:
        return False
    box = mask[y0:y1, x0:x1]
    if not box.any():
        return False
    count, labels = cv2.connectedComponents(box.astype(np.uint8), connectivity=8)
    edge = labels[0] if y0 == 0 else labels[-1]
    if len(np.unique(edge[edge > 0])) < CUT_GLYPHS * (count - 1):
        return False
    others = [_ink_height(ln, mask) for ln in lines if ln is not line]
    return _ink_height(line, mask) < CUT_LINE * float(np.median(others))


def _ink_height(line: Line, mask: np.ndarray) -> int:
    """Rows of the tallest inked band inside the line's box."""
    x0, y0, x1, y1 = (max(0, round(v)) for v in line.box)
    box = mask[y0:y1, x0:x1]
    if not box.any():
        return 0
    top, bottom = _tallest_band(box)
    return bottom - top


def _detect_and_read(ocr: PPOCR, bgr: np.ndarray, background: tuple[int, int, int], glyph_h: float,
                     offset: tuple[int, int] = (0, 0), zoom: float = 1.0) -> list[Line]:
    """The detector's lines of `bgr` (enlarged `zoom` times more than usual for it), read; boxes shifted by
    `offset` (x, y)."""
    pad = max(16, round(2 * glyph_h))
    padded = cv2.copyMakeBorder(bgr, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=background)
    scale = min(zoom * max(1.0, DET_MIN_GLYPH / glyph_h), DET_MAX_SIDE / max(padded.shape[:2]))
    quads = ocr.detect(padded, scale)
    crops = [crop_quad(padded, q) for q in quads]
    shift = np.array(offset, np.float32) - pad
    boxes = [(*(q.min(axis=0) + shift), *(q.max(axis=0) + shift)) for q in quads]
    return _read(crops, boxes, ocr)


def _second_look(ocr: PPOCR, bgr: np.ndarray, background: tuple[int, int, int], glyph_h: float,
                 glyphs: np.ndarray, found: list[Line]) -> list[Line]:
    """Lines the detector missed: it can drop lines set close together (margin notes beside a paragraph),
    whose glyphs then lie outside every box found. Each group of such glyphs is detected again alone and
    closer up, with the lines already found painted out."""
    rows, cols = bgr.shape[:2]
    covered = np.zeros((rows, cols), np.uint8)
    for line in found:
        x0, y0, x1, y1 = (round(v) for v in line.box)
        covered[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = 1
    cx, cy = glyphs[:, 0] + glyphs[:, 2] // 2, glyphs[:, 1] + glyphs[:, 3] // 2
    left_out = glyphs[covered[cy, cx] == 0]
    if len(left_out) < MIN_LEFT_OUT_GLYPHS:
        return []
    marks = np.zeros((rows, cols), np.uint8)
    for x, y, w, h in left_out:
        marks[y:y + h, x:x + w] = 1
    reach = max(1, round(glyph_h))
    groups = cv2.dilate(marks, np.ones((1, 2 * reach + 1), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(groups, connectivity=8)
    painted = bgr.copy()
    painted[covered > 0] = background
    lines = []
    for x, y, w, h, _ in stats[1:count]:
        inside = (cx >= x) & (cx < x + w) & (cy >= y) & (cy < y + h) & (covered[cy, cx] == 0)
        if np.count_nonzero(inside) < MIN_LEFT_OUT_GLYPHS:
            continue
        x0, y0 = max(0, x - reach), max(0, y - reach)
        region = painted[y0:y + h + reach, x0:x + w + reach]
        lines += [ln for ln in _detect_and_read(ocr, region, background, glyph_h, (x0, y0), SECOND_LOOK_ZOOM)
                  if ln.score >= MIN_SECOND_LOOK_SCORE]
    return lines


def leaders(lines: list[Line], mask: np.ndarray) -> list[Line]:
    """Dot leaders between two lines of a row, as lines of their own: the blank between a line and the next
    one to its right holds nothing but at least `MIN_LEADER_DOTS` evenly spaced dots on the baseline."""
    found = []
    for left in lines:
        right = min((ln for ln in lines if ln.box[0] > left.box[2] and _same_row(left, ln)),
                    key=lambda ln: ln.box[0], default=None)
        if right is None:
            continue
        x0, x1 = round(left.box[2]), round(right.box[0])
        y0, y1 = round(min(left.box[1], right.box[1])), round(max(left.box[3], right.box[3]))
        dots = _dots(mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)], min(left.height, right.height))
        if dots is not None:
            xs, gap = dots
            text = (" " if gap >= SPACE_GAP * min(left.height, right.height) else "").join("." * len(xs))
            found.append(Line((x0 + xs[0], left.box[1], x0 + xs[-1], left.box[3]), text, 1.0, leader=True))
    return found


def _same_row(a: Line, b: Line) -> bool:
    return min(a.box[3], b.box[3]) - max(a.box[1], b.box[1]) >= 0.5 * min(a.height, b.height)


def _dots(band: np.ndarray, height: float) -> tuple[list[int], float] | None:
    """The x of each leader dot in a row's blank and the median blank between dots; None unless the blank
    holds leader dots alone (ink that touches its edges belongs to the neighbours and is left out)."""
    if band.size == 0:
        return None
    _, _, stats, _ = cv2.connectedComponentsWithStats(band.astype(np.uint8), connectivity=8)
    rows, cols = band.shape
    x, y, w, h, _ = stats[1:].T
    inside = (x > 0) & (y > 0) & (x + w < cols) & (y + h < rows)
    x, y, w, h = x[inside], y[inside], w[inside], h[inside]
    dot = (w <= LEADER_DOT * height) & (h <= LEADER_DOT * height) & (y + h / 2 > rows / 2)
    if len(x) < MIN_LEADER_DOTS or not dot.all():
        return None
    order = np.argsort(x)
    centres = (x + w / 2)[order]
    steps = np.diff(centres)
    if steps.min() <= 0 or steps.max() > LEADER_PITCH_SPREAD * steps.min():
        return None
    blanks = x[order][1:] - (x + w)[order][:-1]
    return [int(c) for c in centres], float(np.median(blanks))


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
            share = DIGIT_SPACE_GAP if _in_number(rec.text, i) else SPACE_GAP
            if _longest_run(blank[lo:hi]) >= share * (bottom - top):
                out.append(" ")
        out.append(b)
    return "".join(out)


def _in_number(text: str, i: int) -> bool:
    """Whether characters i-1 and i are inside a number ("12", "6.10"): tabular figures leave wide gaps."""
    a, b = text[i - 1], text[i]
    return b.isdigit() and (a.isdigit() or (a in ".," and i >= 2 and text[i - 2].isdigit()))


def _tallest_band(mask: np.ndarray) -> tuple[int, int]:
    """Rows [top, bottom) of the tallest run of inked rows: the line itself, not bits of its neighbours."""
    starts, ends = _runs(mask.any(axis=1))
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k])


def _longest_run(flags: np.ndarray) -> int:
    starts, ends = _runs(flags)
    return int((ends - starts).max()) if len(starts) else 0
