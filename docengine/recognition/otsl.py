"""OTSL, the table markup PaddleOCR-VL writes for `Table Recognition:`, turned into an HTML table.

The model's output is not always well formed (ragged rows, stray text, truncated runs), so the conversion
never raises: rows are padded or cut to one width, orphan merge tokens become empty cells, and text with no
cell in it gives "" so that the caller can keep the raw text. Only the six OTSL 1.0 tags are known, as in
PaddleX; anything else (`<ched>` included) is cell text and is HTML-escaped.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

FCEL, ECEL, LCEL, UCEL, XCEL, NL = "<fcel>", "<ecel>", "<lcel>", "<ucel>", "<xcel>", "<nl>"
_CELL_TAGS = (FCEL, ECEL, LCEL, UCEL, XCEL)
_TAG_RE = re.compile("(" + "|".join(re.escape(t) for t in (*_CELL_TAGS, NL)) + ")")
_RIGHT = (LCEL, XCEL)   # continues the cell on its left
_DOWN = (UCEL, XCEL)    # continues the cell above


@dataclass
class _Cell:
    row: int
    col: int
    text: str
    rowspan: int = 1
    colspan: int = 1


def parse_rows(otsl: str) -> list[list[tuple[str, str]]]:
    """Rows of (tag, text) in reading order. Text before a row's first tag has no cell and is dropped."""
    rows: list[list[tuple[str, str]]] = []
    row: list[tuple[str, str]] = []
    parts = _TAG_RE.split(otsl)
    for i in range(1, len(parts), 2):
        tag, text = parts[i], parts[i + 1]
        if tag == NL:
            if row:
                rows.append(row)
            row = []
        else:
            row.append((tag, text))
    if row:
        rows.append(row)
    return rows


def best_width(rows: list[list[tuple[str, str]]]) -> int:
    """The row width that changes the fewest tokens overall, never cutting a row's last `<fcel>`.

    Ties go to the narrowest width, as in PaddleX's `otsl_pad_to_sqr_v2`.
    """
    lengths = [len(r) for r in rows]
    floor = max((max((i + 1 for i, (tag, _) in enumerate(r) if tag == FCEL), default=0) for r in rows),
                default=0)
    widths = range(floor, max(floor, max(lengths, default=0)) + 1)
    return min(widths, key=lambda w: sum(abs(n - w) for n in lengths))


def to_grid(rows: list[list[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
    """Every row cut or padded with `<ecel>` to `best_width`, so that spans can be read column-wise."""
    width = best_width(rows)
    return [(r + [(ECEL, "")] * width)[:width] for r in rows]


def _cells(grid: list[list[tuple[str, str]]]) -> list[_Cell]:
    cells = []
    for r, row in enumerate(grid):
        for c, (tag, text) in enumerate(row):
            if tag not in (FCEL, ECEL):
                continue
            cell = _Cell(r, c, text.strip() if tag == FCEL else "")
            while c + cell.colspan < len(row) and row[c + cell.colspan][0] in _RIGHT:
                cell.colspan += 1
            while r + cell.rowspan < len(grid) and grid[r + cell.rowspan][c][0] in _DOWN:
                cell.rowspan += 1
            cells.append(cell)
    return cells


def otsl_to_html(otsl: str) -> str:
    """`<table><tr><td rowspan="2">…</td>…</tr></table>`; "" when the text holds no cell (e.g. it is HTML)."""
    grid = to_grid(parse_rows(otsl.strip()))
    cells = _cells(grid)
    if not cells:
        return ""
    owner: dict[tuple[int, int], _Cell] = {}
    for cell in cells:  # a later cell wins where spans overlap, as in PaddleX
        for r in range(cell.row, cell.row + cell.rowspan):
            for c in range(cell.col, cell.col + cell.colspan):
                owner[(r, c)] = cell
    body = []
    for r, row in enumerate(grid):
        body.append("<tr>")
        for c in range(len(row)):
            here = owner.get((r, c))
            if here is None:  # an orphan merge token: nothing to merge into
                body.append("<td></td>")
            elif (here.row, here.col) == (r, c):
                attrs = (f' rowspan="{here.rowspan}"' if here.rowspan > 1 else "") + (
                    f' colspan="{here.colspan}"' if here.colspan > 1 else "")
                body.append(f"<td{attrs}>{html.escape(here.text)}</td>")
        body.append("</tr>")
    return "<table>" + "".join(body) + "</table>"
