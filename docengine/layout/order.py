"""Geometric reading order (recursive XY-cut): the order of a model that predicts none, and the place of a
block found after layout (`docengine.recovery`) among the blocks the layout model gave."""

from __future__ import annotations

import numpy as np

ORDER_MIN_SCORE = 0.4   # only boxes this confident decide where the page is cut


def reading_order(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Reading rank of each box (xyxy) by recursive XY-cut.

    A region is split into columns at vertical gaps that no box crosses, read left to right. Failing that,
    it is split into rows at horizontal gaps, read top to bottom, where consecutive rows that together still
    form columns stay one region: so a column is read to its end before the next one even when the columns'
    paragraph breaks line up, while a full-width block (a title, a wide figure) ends a run of columns. A
    region that cannot be cut is read by (top, left). Low-score boxes do not shape the cuts: they follow the
    region of their centre.
    """
    strong = np.flatnonzero(scores >= ORDER_MIN_SCORE)
    weak = np.flatnonzero(scores < ORDER_MIN_SCORE)
    order = _xy_cut(boxes, strong, weak)
    ranks = np.empty(len(boxes))
    ranks[order] = np.arange(len(order))
    return ranks


def _xy_cut(boxes: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> list[int]:
    columns = _gap_split(boxes[strong, 0], boxes[strong, 2])
    if len(columns) > 1:
        return _read_in_turn(boxes, strong, weak, columns, axis=0)
    rows = _join_column_runs(boxes, strong, _gap_split(boxes[strong, 1], boxes[strong, 3]))
    if len(rows) > 1:
        return _read_in_turn(boxes, strong, weak, rows, axis=1)
    members = np.concatenate([strong, weak]).astype(int)
    return [int(i) for i in members[np.lexsort((boxes[members, 0], boxes[members, 1]))]]


def _read_in_turn(boxes: np.ndarray, strong: np.ndarray, weak: np.ndarray, spans: list[tuple[float, float]],
                  axis: int) -> list[int]:
    starts = boxes[strong, axis]
    home = _nearest_span(spans, (boxes[weak, axis] + boxes[weak, axis + 2]) / 2)
    return [
        i
        for g, (lo, hi) in enumerate(spans)
        for i in _xy_cut(boxes, strong[(starts >= lo) & (starts <= hi)], weak[home == g])
    ]


def _join_column_runs(boxes: np.ndarray, strong: np.ndarray,
                      rows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Merge consecutive rows while the boxes of the merged rows still split into columns."""
    joined = rows[:1]
    for lo, hi in rows[1:]:
        top = joined[-1][0]
        members = strong[(boxes[strong, 1] >= top) & (boxes[strong, 1] <= hi)]
        if len(_gap_split(boxes[members, 0], boxes[members, 2])) > 1:
            joined[-1] = (top, hi)
        else:
            joined.append((lo, hi))
    return joined


def _gap_split(lo: np.ndarray, hi: np.ndarray) -> list[tuple[float, float]]:
    """The intervals' union as disjoint spans, in increasing order."""
    spans: list[tuple[float, float]] = []
    for start, end in sorted(zip(lo.tolist(), hi.tolist(), strict=True)):
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def _nearest_span(spans: list[tuple[float, float]], points: np.ndarray) -> np.ndarray:
    lo = np.array([s[0] for s in spans])
    hi = np.array([s[1] for s in spans])
    distance = np.maximum(lo[None, :] - points[:, None], 0) + np.maximum(points[:, None] - hi[None, :], 0)
    return np.argmin(distance, axis=1) if len(points) else np.zeros(0, dtype=int)
