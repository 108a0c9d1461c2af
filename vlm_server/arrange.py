"""Arrange recognised lines into what PaddleOCR-VL answers per prompt: paragraphs, OTSL tables, rows.

PaddleOCR-VL writes a wrapped paragraph as one line (English joined by spaces, CJK without), separate
paragraphs on separate lines, and tables as OTSL (`<fcel>` cell, `<ecel>` empty cell, `<nl>` row end).
The table grid here comes from geometry alone: rows by vertical overlap, columns by horizontal overlap
of the line boxes across all rows. Spanning cells and multi-line cells are not recovered.
"""

from __future__ import annotations

import statistics

from contract.text import in_columns, join_words
from vlm_server.textlines import Line

PARAGRAPH_GAP = 0.8  # a vertical gap wider than this share of the line height starts a new paragraph
LATEX_SPECIALS = {c: "\\" + c for c in "#$%&_{}"} | {"\\": r"\backslash "}


def rows(lines: list[Line]) -> list[list[Line]]:
    """Lines grouped into rows (vertical overlap of at least half the smaller height), each left to right."""
    out: list[list[Line]] = []
    top = bottom = 0.0
    for line in sorted(lines, key=lambda ln: ln.cy):
        y0, y1 = line.box[1], line.box[3]
        if out and min(y1, bottom) - max(y0, top) >= 0.5 * min(y1 - y0, bottom - top):
            out[-1].append(line)
            top, bottom = min(top, y0), max(bottom, y1)
        else:
            out.append([line])
            top, bottom = y0, y1
    return [sorted(row, key=lambda ln: ln.box[0]) for row in out]


def paragraphs(lines: list[Line]) -> str:
    """OCR answer: column after column (`contract.text.in_columns`), one line per paragraph; a paragraph ends
    at a vertical gap wider than usual, and after a row with dot leaders."""
    if not lines:
        return ""
    height = statistics.median(ln.height for ln in lines)
    paras: list[list[str]] = []
    for column in in_columns(lines, lambda ln: (ln.box[0], ln.box[2]), height):
        previous_bottom, entry_ended = 0.0, True
        for row in rows(column):
            top = min(ln.box[1] for ln in row)
            if entry_ended or top - previous_bottom > PARAGRAPH_GAP * height:
                paras.append([])
            paras[-1].append(join_words([ln.text for ln in row]))
            previous_bottom = max(ln.box[3] for ln in row)
            # a row with dot leaders is an entry of a table of contents: a line of its own
            entry_ended = any(ln.leader for ln in row)
    return "\n".join(join_words(p) for p in paras)


def columns(lines: list[Line]) -> list[tuple[float, float]]:
    """Column bands: the union of overlapping horizontal extents of all line boxes, left to right."""
    bands: list[list[float]] = []
    for x0, x1 in sorted((ln.box[0], ln.box[2]) for ln in lines):
        if bands and x0 < bands[-1][1]:
            bands[-1][1] = max(bands[-1][1], x1)
        else:
            bands.append([x0, x1])
    return [(a, b) for a, b in bands]


def grid(lines: list[Line]) -> list[list[str]]:
    """Cell texts by row and column ("" for an empty cell)."""
    bands = columns(lines)
    table = []
    for row in rows(lines):
        cells: list[list[str]] = [[] for _ in bands]
        for line in row:
            col = max(i for i, (a, _) in enumerate(bands) if a <= line.box[0])
            cells[col].append(line.text)
        table.append([join_words(c) for c in cells])
    return table


def otsl(lines: list[Line]) -> str:
    """Table answer in OTSL: `<fcel>text` per cell, `<ecel>` per empty cell, `<nl>` after each row."""
    return "".join(
        "".join(f"<fcel>{cell}" if cell else "<ecel>" for cell in row) + "<nl>" for row in grid(lines)
    )


def chart_rows(lines: list[Line]) -> str:
    """Chart answer: the chart's printed text by rows, cells separated by " | " (values are not read)."""
    return "\n".join(" | ".join(cell for cell in row if cell) for row in grid(lines))


def formula(lines: list[Line]) -> str:
    """Formula answer: the OCR text, LaTeX-escaped, in the display delimiters PaddleOCR-VL emits."""
    text = join_words([join_words([ln.text for ln in row]) for row in rows(lines)])
    if not text:
        return ""
    return r"\[" + "".join(LATEX_SPECIALS.get(c, c) for c in text) + r"\]"


def plain_lines(lines: list[Line]) -> str:
    """Seal and spotting answer: every row on its own line."""
    return "\n".join(join_words([ln.text for ln in row]) for row in rows(lines))
