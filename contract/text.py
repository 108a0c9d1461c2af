"""How every tier writes text: the engine joining a PDF's text layer and the recogniser joining what it read
must put spaces in the same places and read columns in the same order, or the same page reads differently
by the way it was read."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

COLUMN_GAP = 1.5         # a blank this wide (line heights) may part two columns
MIN_COLUMN = 12          # line heights: the narrowest column read apart from its neighbours


def is_cjk(ch: str) -> bool:
    """CJK ideographs, kana, Hangul and full-width forms: scripts written without spaces between words."""
    return ("\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" or "\uf900" <= ch <= "\ufaff"
            or "\uff00" <= ch <= "\uffef")


def join_words(parts: Sequence[str]) -> str:
    """Pieces of one paragraph (its lines, or a line's pieces): a space between words, none at a CJK
    boundary or after a line-end hyphen."""
    out = ""
    for part in parts:
        if out and not (out.endswith("-") or is_cjk(out[-1]) or is_cjk(part[0])):
            out += " "
        out += part
    return out


def halfwidth_punctuation(text: str) -> str:
    """Full-width punctuation between Latin characters written as ASCII (the recogniser's habit, not the
    page's); CJK punctuation among CJK text stays as it is."""
    chars = list(text)
    for i, ch in enumerate(chars):
        if "\uff01" <= ch <= "\uff5e" and not ch.isalnum():
            around = text[max(0, i - 1):i] + text[i + 1:i + 2]
            if around and all(c.isascii() for c in around):
                chars[i] = unicodedata.normalize("NFKC", ch)
    return "".join(chars)


def in_columns(items: Sequence[T], extent: Callable[[T], tuple[float, float]],
               height: float) -> list[list[T]]:
    """`items` parted into the columns of `column_cuts` (by the middle of each one's `extent`), left to right,
    each in the items' own order; no empty column."""
    cuts = column_cuts([extent(item) for item in items], height)
    columns: list[list[T]] = [[] for _ in range(len(cuts) + 1)]
    for item in items:
        x0, x1 = extent(item)
        columns[sum((x0 + x1) / 2 > cut for cut in cuts)].append(item)
    return [c for c in columns if c]


def column_cuts(extents: Sequence[tuple[float, float]], height: float) -> list[float]:
    """Where to part a block into columns read one after the other: the middles of vertical gaps that no
    extent (x0, x1) crosses, wider than `COLUMN_GAP` line heights, with at least `MIN_COLUMN` line heights
    on either side (a column of line numbers beside code, or of cells in a row, is read with its row)."""
    if not extents:
        return []
    spans: list[list[float]] = []
    for x0, x1 in sorted(extents):
        if spans and x0 <= spans[-1][1] + COLUMN_GAP * height:
            spans[-1][1] = max(spans[-1][1], x1)
        else:
            spans.append([x0, x1])
    right = spans[-1][1]
    cuts: list[float] = []
    start = spans[0][0]
    for before, after in zip(spans, spans[1:], strict=False):
        if before[1] - start >= MIN_COLUMN * height and right - after[0] >= MIN_COLUMN * height:
            cuts.append((before[1] + after[0]) / 2)
            start = after[0]
    return cuts
