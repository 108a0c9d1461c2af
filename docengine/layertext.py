"""A text block's text from the PDF's text layer: whether to believe the layer there, and the text itself.

Order and words come from the characters' positions, not from the order the PDF happens to draw them in:
characters sharing a band are a line, read left to right; a gap between lines taller than usual starts a
paragraph. The text is written as the recogniser writes it (`vlm_server.arrange`): a paragraph on one line,
English lines joined with a space, CJK lines and a line ending in a hyphen joined without one, ligatures and
full-width letters and digits as plain ones, full-width punctuation between Latin characters as ASCII.

Trust is decided per block (`distrust`) and says why not, so that the fallback can be counted and tested.
"""

from __future__ import annotations

import statistics
import unicodedata
from collections.abc import Sequence

import cv2
import numpy as np

from contract.text import halfwidth_punctuation, in_columns, is_cjk, join_words
from docengine.textlayer import Char, is_unmapped

SPACE_GAP = 0.2          # a gap this wide (share of the glyphs' height) between two glyphs is a space
PARAGRAPH_GAP = 0.5      # a blank band this tall (share of the line height) between lines: a new paragraph
MIN_INK_COVERED = 0.9    # share of a block's ink that must lie on the layer's glyphs
INK_MARGIN = 2           # px around each glyph's box that still count as its ink
MIN_INK_PIXELS = 30      # a block with less ink than this has nothing to compare
MAX_UNMAPPED = 0.02      # share of a block's glyphs that may lack Unicode (a stray symbol of a math font)
RULE_LENGTH = 4          # glyph heights: ink in a straight run this long is a rule or a fill, not text


def lines_of(chars: Sequence[Char]) -> list[list[Char]]:
    """Characters grouped into lines (vertical overlap of at least half the smaller height), each read left
    to right, the lines top to bottom."""
    lines: list[list[Char]] = []
    bands: list[list[float]] = []
    for char in sorted(chars, key=lambda c: c.centre[1]):
        top, bottom = char.box[1], char.box[3]
        for line, band in zip(reversed(lines), reversed(bands), strict=True):
            overlap = min(bottom, band[1]) - max(top, band[0])
            if overlap >= 0.5 * min(bottom - top, band[1] - band[0]):
                line.append(char)
                band[0], band[1] = min(band[0], top), max(band[1], bottom)
                break
            if band[1] < top:
                lines.append([char])
                bands.append([top, bottom])
                break
        else:
            lines.append([char])
            bands.append([top, bottom])
    ordered = sorted(zip(lines, bands, strict=True), key=lambda lb: (lb[1][0] + lb[1][1]) / 2)
    return [sorted(line, key=lambda c: c.box[0]) for line, _ in ordered]


def line_text(line: Sequence[Char]) -> str:
    out = ""
    line = [c for c in line if not is_unmapped(ord(c.text[0]))]
    for prev, char in zip([None, *line[:-1]], line, strict=True):
        text = char.text
        if prev is not None and not (is_cjk(prev.text[-1]) or is_cjk(text[0])):
            gap = char.box[0] - prev.box[2]
            height = min(prev.height, char.height)
            if gap > SPACE_GAP * height or (char.space_before and gap > 0.05 * height):
                out += " "
        out += text
    return out


def box_of(chars: Sequence[Char]) -> tuple[float, float, float, float]:
    return (min(c.box[0] for c in chars), min(c.box[1] for c in chars),
            max(c.box[2] for c in chars), max(c.box[3] for c in chars))


def columns_of(chars: Sequence[Char]) -> list[list[Char]]:
    """Characters split into columns, left to right (`contract.text.in_columns`, in glyph heights)."""
    if not chars:
        return []
    return in_columns(chars, lambda c: (c.box[0], c.box[2]), statistics.median(c.height for c in chars))


def compose(chars: Sequence[Char]) -> str:
    """The text of a block's characters: column after column, line after line, paragraphs (a blank band
    taller than usual before them) on lines of their own."""
    paragraphs: list[list[str]] = []
    for column in columns_of(chars):
        lines = lines_of(column)
        extents = [(min(c.box[1] for c in line), max(c.box[3] for c in line)) for line in lines]
        height = statistics.median(bottom - top for top, bottom in extents)
        paragraphs.append([])
        for n, line in enumerate(lines):
            if n and extents[n][0] - extents[n - 1][1] > PARAGRAPH_GAP * height:
                paragraphs.append([])
            paragraphs[-1].append(line_text(line))
    return normalise("\n".join(join_words(p) for p in paragraphs if p))


def normalise(text: str) -> str:
    """Ligatures, full-width letters and digits, and full-width punctuation between Latin characters written
    as the recogniser writes them; CJK punctuation among CJK text stays as it is."""
    return "".join(unicodedata.normalize("NFKC", ch)
                   if "\ufb00" <= ch <= "\ufb4f" or ("\uff01" <= ch <= "\uff5e" and ch.isalnum()) else ch
                   for ch in halfwidth_punctuation(text))


def distrust(chars: Sequence[Char], covered: float, *, trust_invisible: bool = False) -> str | None:
    """Why a block's text should not come from the layer, or None when it can.

    `chars` are the block's characters and `covered` the share of its ink that lies on the layer's glyphs
    (`covered_share`). Reasons: no text (a scan, an image of text), an invisible OCR layer, glyphs without
    Unicode (beyond a stray `MAX_UNMAPPED` share, left out of the text), rotated or vertical text, and ink the
    glyphs do not cover (text drawn as a picture or paths)."""
    if not chars:
        return "no text"
    if not trust_invisible and any(c.invisible for c in chars):
        return "invisible"
    if sum(c.unmapped for c in chars) > MAX_UNMAPPED * len(chars):
        return "unmapped"
    if not all(c.upright for c in chars) or _vertical(chars):
        return "rotated"
    if covered < MIN_INK_COVERED:
        return "uncovered ink"
    return None


def _vertical(chars: Sequence[Char]) -> bool:
    """Characters stacked one per line: a column of vertical writing, whose order is not left to right."""
    lines = lines_of(chars)
    return len(lines) >= 3 and len(chars) <= 1.5 * len(lines)


def covered_share(chars: Sequence[Char], ink: np.ndarray, origin: tuple[int, int]) -> float:
    """The share of `ink` lying on (or within `INK_MARGIN` px of) the boxes of `chars`."""
    total = int(ink.sum())
    if total < MIN_INK_PIXELS:
        return 1.0
    height, width = ink.shape
    glyphs = np.zeros_like(ink)
    ox, oy = origin
    for char in chars:
        x1, y1, x2, y2 = char.box
        glyphs[max(0, int(y1 - oy) - INK_MARGIN):max(0, int(y2 - oy) + 1 + INK_MARGIN),
               max(0, int(x1 - ox) - INK_MARGIN):max(0, int(x2 - ox) + 1 + INK_MARGIN)] = True
    return int((ink & glyphs).sum()) / total


def without_rules(ink: np.ndarray, chars: Sequence[Char]) -> np.ndarray:
    """`ink` less its rules and fills (`rules_removed`) by the glyphs' heights, which no glyph draws and so
    say nothing of text the layer lacks."""
    if not chars or not ink.any():
        return ink
    return rules_removed(ink, statistics.median(c.height for c in chars))


def rules_removed(ink: np.ndarray, glyph_height: float) -> np.ndarray:
    """`ink` less pixels on a straight horizontal or vertical run longer than `RULE_LENGTH` glyph heights:
    table rules, underlines, a banner behind white text."""
    run = max(3, int(RULE_LENGTH * glyph_height))
    mask = ink.astype(np.uint8)
    across = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((1, run), np.uint8)).astype(bool)
    down = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((run, 1), np.uint8)).astype(bool)
    return ink & ~(across | down)


def ink_mask(gray: np.ndarray) -> np.ndarray:
    """Pixels clearly darker than the paper (the crop's brightest common level)."""
    if gray.size == 0:
        return np.zeros(gray.shape, bool)
    paper = float(np.percentile(gray, 90))
    return gray < paper - 60
