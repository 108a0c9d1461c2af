"""No text left behind: text the layout model gave no box, and words a box cut, found and given a block.

Where a page has a text layer, the layer says where its text is: every character belongs to the box its
centre falls in. A word that a text box cuts is taken whole into that box, and the box grows to the words
and glyphs it holds, so that no crop cuts a glyph. Characters in no box are grouped into lines and blocks;
a block lying right against a text box (under it in its column, or beside it on its line) joins that box,
any other becomes a new `text` box, marked `recovered`. Pages without a text layer (images, scans) get the
same from a text-line detector run on the ink that no box covers (`docengine.layout.textlines`), after
text boxes are widened over ink that runs on past their edges (`grow_to_ink`). On either kind of page, a
picture box that holds nothing but text (a table of contents, a reference card) is text the model took for a
picture: it is left out, and its text recovered.

Recovered boxes are placed in the reading order by geometry (XY-cut over all boxes), after the box that
precedes them there; the layout model's own order of its boxes is left as it was. With nothing uncovered,
the boxes come back unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from docengine import layertext
from docengine.layout.labels import LABEL_IDS, SKIP_ORDER
from docengine.layout.order import reading_order
from docengine.layout.textlines import MIN_GLYPH_PX
from docengine.textlayer import Char
from docengine.types import LayoutBox

Box = tuple[float, float, float, float]

# Blocks whose text is prose: they may grow to whole words and take in a missed line next to them.
PROSE_LABELS = frozenset({
    "text", "paragraph_title", "doc_title", "abstract", "content", "reference_content", "footnote",
    "figure_title", "header", "footer", "aside_text", "vision_footnote", "number", "algorithm",
})
WORD_GAP = 0.3         # glyphs closer than this (share of their height) on one line belong to one word
BLOCK_GAP = 1.0        # lines closer than this (share of the line height) belong to one block
BESIDE_GAP = 2.0       # pieces of a line closer than this (line heights) belong to one block
PAD = 0.25             # a recovered block's margin around its glyphs, as a share of its line height
PICTURE_LABELS = frozenset({"image", "chart"})
MIN_PICTURE_TEXT = 20  # characters a picture box must hold to be taken for text
MIN_PICTURE_LINES = 2  # text lines a picture on a page without a layer must hold to be taken for text
MAX_GLYPH_PX = 64      # ink components taller than this (or long and thin: rules) are not glyphs


def owner_of(centres: np.ndarray, boxes: Sequence[Sequence[float]]) -> np.ndarray:
    """For each point, the index of the smallest box containing it, or -1."""
    owner = np.full(len(centres), -1)
    if not len(centres) or not len(boxes):
        return owner
    area = np.full(len(centres), np.inf)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        inside = ((centres[:, 0] >= x1) & (centres[:, 0] <= x2) & (centres[:, 1] >= y1)
                  & (centres[:, 1] <= y2))
        size = (x2 - x1) * (y2 - y1)
        better = inside & (size < area)
        owner[better], area[better] = i, size
    return owner


def words(chars: Sequence[Char]) -> list[list[int]]:
    """Indices of `chars` (in the layer's order) grouped into words: neighbours in the layer that sit on one
    line with no space between them."""
    out: list[list[int]] = []
    for i, char in enumerate(chars):
        if out and not char.space_before:
            prev = chars[out[-1][-1]]
            height = min(prev.height, char.height)
            same_line = min(prev.box[3], char.box[3]) - max(prev.box[1], char.box[1]) > 0.5 * height
            if same_line and -height < char.box[0] - prev.box[2] < WORD_GAP * height:
                out[-1].append(i)
                continue
        out.append([i])
    return out


def recover_from_layer(boxes: list[LayoutBox], chars: Sequence[Char], gray: np.ndarray) -> list[LayoutBox]:
    """`boxes` with cut words taken whole and the layer's uncovered text in blocks of its own (see above).
    Unchanged (the same list) when every word lies whole in one box. `gray` is the page image in grey.

    A picture box whose ink is nearly all the layer's glyphs is text the model took for a picture (a table
    of contents, a reference card): it is left out, and its text recovered like any other."""
    if not chars:
        return boxes
    pictures = [b for b in boxes if b.label in PICTURE_LABELS and _is_text(b, chars, gray)]
    if pictures:
        boxes = [b for b in boxes if not any(b is p for p in pictures)]
    coords = [list(b.coordinate) for b in boxes]
    owner = owner_of(np.array([c.centre for c in chars]), coords)
    changed = False
    for word in words(chars):
        owners = {int(owner[i]) for i in word}
        prose = [o for o in owners if o >= 0 and boxes[o].label in PROSE_LABELS]
        if len(owners) > 1 and len(prose) == 1 and -1 in owners:
            target = prose[0]
            for i in word:
                owner[i] = target
                coords[target] = _union(coords[target], chars[i].box)
            changed = True
    for i, b in enumerate(boxes):     # and no glyph of a prose box sticks out of it on the left or right
        mine = np.flatnonzero(owner == i)
        if b.label in PROSE_LABELS and len(mine):
            left, right = min(chars[k].box[0] for k in mine), max(chars[k].box[2] for k in mine)
            if left < coords[i][0] or right > coords[i][2]:
                coords[i][0], coords[i][2] = min(coords[i][0], left), max(coords[i][2], right)
                changed = True
    loose = [chars[i] for i in np.flatnonzero(owner < 0)]
    lines = [line for column in layertext.columns_of(loose) for line in layertext.lines_of(column)]
    groups = group_lines([layertext.box_of(line) for line in lines])
    height, width = gray.shape[:2]
    new: list[Box] = []
    for group, line_height in groups:
        neighbour = _neighbour(group, line_height, coords, boxes)
        if neighbour is not None:
            coords[neighbour] = _union(coords[neighbour], group)
        else:
            new.append(_padded(group, line_height, width, height))
        changed = True
    if not changed and not pictures:
        return boxes
    grown = [dataclasses.replace(b, coordinate=[float(v) for v in c]) if c != list(b.coordinate) else b
             for b, c in zip(boxes, coords, strict=True)]
    return place(grown, new)


def drop_text_pictures(boxes: list[LayoutBox], gray: np.ndarray,
                       lines_in: Callable[[Box], Sequence[Box]]) -> list[LayoutBox]:
    """`boxes` without the picture boxes that are text the model took for a picture (a table of contents, a
    reference card), on a page without a text layer: those whose ink (specks such as dot leaders aside) is
    nearly all glyph-sized and lies in the text lines `lines_in(box)` finds there. Their text is then
    uncovered, and recovered like any other. The detector runs only on pictures whose ink looks like glyphs:
    photos, screenshots and plots cost a mask."""
    kept = []
    for box in boxes:
        x1, y1, x2, y2 = (max(0, int(v)) for v in box.coordinate)
        if box.label in PICTURE_LABELS:
            ink, glyph_share = _glyphs(layertext.ink_mask(gray[y1:y2, x1:x2]))
            if glyph_share >= layertext.MIN_INK_COVERED:
                lines = lines_in((x1, y1, x2, y2))
                covered = _share_in(ink, lines, (x1, y1))
                if len(lines) >= MIN_PICTURE_LINES and covered >= layertext.MIN_INK_COVERED:
                    continue
        kept.append(box)
    return kept if len(kept) < len(boxes) else boxes


def _glyphs(ink: np.ndarray) -> tuple[np.ndarray, float]:
    """`ink` without specks, and the share of the rest in components the size and shape of glyphs (not
    frames, rules, photos or plots)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    w, h, area = stats[1:, 2], stats[1:, 3], stats[1:, 4]
    speck = h < MIN_GLYPH_PX
    glyph = ~speck & (h <= MAX_GLYPH_PX) & (w <= 8 * MAX_GLYPH_PX) & (w <= 20 * h)
    kept = np.zeros(count, bool)
    kept[1:] = ~speck
    total = int(area[~speck].sum())
    if total < layertext.MIN_INK_PIXELS:
        return kept[labels], 0.0
    return kept[labels], float(area[glyph].sum()) / total


def _share_in(ink: np.ndarray, lines: Sequence[Box], origin: tuple[int, int]) -> float:
    """The share of `ink` (whose top left is `origin` on the page) inside the boxes `lines`."""
    inside = np.zeros_like(ink)
    ox, oy = origin
    for x1, y1, x2, y2 in ((int(a) - ox, int(b) - oy, int(c) - ox, int(d) - oy) for a, b, c, d in lines):
        inside[max(0, y1):max(0, y2 + 1), max(0, x1):max(0, x2 + 1)] = True
    return float((ink & inside).sum()) / max(1, int(ink.sum()))


def recover_from_lines(boxes: list[LayoutBox], lines: Sequence[Box],
                       page_size: tuple[int, int]) -> list[LayoutBox]:
    """`boxes` and a block for each group of text lines no box covers (lines found by a detector)."""
    if not lines:
        return boxes
    width, height = page_size
    coords = [list(b.coordinate) for b in boxes]
    new: list[Box] = []
    for group, line_height in group_lines(list(lines)):
        neighbour = _neighbour(group, line_height, coords, boxes)
        if neighbour is not None:
            coords[neighbour] = _union(coords[neighbour], group)
        else:
            new.append(_padded(group, line_height, width, height))
    grown = [dataclasses.replace(b, coordinate=[float(v) for v in c]) if c != list(b.coordinate) else b
             for b, c in zip(boxes, coords, strict=True)]
    return place(grown, new)


def grow_to_ink(boxes: list[LayoutBox], gray: np.ndarray) -> list[LayoutBox]:
    """Prose boxes widened, left and right, over ink that runs on past their edges within a word's gaps: on a
    page without a text layer, what keeps a crop from cutting the first or last glyphs of a line. Rules are
    not glyphs, and a box does not grow into the boxes beside it (as grown so far: a glyph between two is
    the first one's)."""
    ink = layertext.ink_mask(gray)
    out = list(boxes)
    for k, box in enumerate(boxes):
        x1, y1, x2, y2 = (int(v) for v in box.coordinate)
        band = ink[max(0, y1):max(0, y2)]
        if box.label not in PROSE_LABELS or not band.size or not band.any():
            continue
        glyph_height = _glyph_height(band[:, x1:x2])
        columns = layertext.rules_removed(band, glyph_height).any(axis=0)
        walls = np.zeros_like(columns)
        for other in out[:k] + out[k + 1:]:
            a1, b1, a2, b2 = (int(v) for v in other.coordinate)
            beside = a2 <= x1 or a1 >= x2  # not a picture around it
            if beside and min(y2, b2) - max(y1, b1) > 0.5 * min(y2 - y1, b2 - b1):
                walls[max(0, a1):max(0, a2)] = True
        reach = max(2, int(WORD_GAP * 2 * glyph_height))
        left, right = _grow(columns, walls, x1, -1, reach), _grow(columns, walls, x2 - 1, 1, reach) + 1
        if (left, right) != (x1, x2):
            out[k] = dataclasses.replace(box, coordinate=[float(left), box.coordinate[1], float(right),
                                                          box.coordinate[3]])
    return out


def _grow(columns: np.ndarray, walls: np.ndarray, edge: int, step: int, reach: int) -> int:
    """The last inked column reached from `edge` going `step`-wise across blank runs shorter than `reach`,
    short of any wall."""
    last, blank, x = edge, 0, edge + step
    while 0 <= x < len(columns) and blank < reach and not walls[x]:
        if columns[x]:
            last, blank = x, 0
        else:
            blank += 1
        x += step
    return last


def _glyph_height(band: np.ndarray) -> float:
    """The median height of the runs of inked rows: a line's height, whatever the box holds."""
    rows = band.any(axis=1).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], rows, [0]))))
    runs = edges[1::2] - edges[::2]
    return float(np.median(runs)) if len(runs) else float(band.shape[0])


def group_lines(lines: list[Box]) -> list[tuple[Box, float]]:
    """Line boxes joined into blocks (one under the other, close and overlapping in x, or pieces of one line
    close beside each other): (block, line height)."""
    groups: list[tuple[list[float], list[float]]] = []
    for line in sorted(lines, key=lambda b: (b[1], b[0])):
        h = line[3] - line[1]
        for box, heights in groups:
            height = max(h, float(np.median(heights)))
            gap = line[1] - box[3]
            overlap = min(line[2], box[2]) - max(line[0], box[0])
            beside = (min(line[3], box[3]) - max(line[1], box[1]) > 0.5 * h
                      and max(line[0] - box[2], box[0] - line[2]) < BESIDE_GAP * height)
            if (-h < gap < BLOCK_GAP * height and overlap > 0) or beside:
                box[:] = _union(box, line)
                heights.append(h)
                break
        else:
            groups.append((list(line), [h]))
    return [((b[0], b[1], b[2], b[3]), float(np.median(h))) for b, h in groups]


def place(boxes: list[LayoutBox], new: Sequence[Box]) -> list[LayoutBox]:
    """`boxes` with a recovered `text` box for each of `new`, each after the box that precedes it in the
    geometric reading order; `order` numbered again over the blocks that are read."""
    if not new:
        return boxes
    text = LABEL_IDS["text"]
    added = [LayoutBox(text, "text", 0.0, [float(v) for v in b], recovered=True) for b in new]
    everything = [*boxes, *added]
    ranks = reading_order(np.array([b.coordinate for b in everything], dtype=float), np.ones(len(everything)))
    rank_of = {id(b): float(r) for b, r in zip(everything, ranks, strict=True)}
    out = list(boxes)
    for box in sorted(added, key=lambda b: rank_of[id(b)]):
        before = [i for i, b in enumerate(out) if rank_of[id(b)] < rank_of[id(box)]]
        out.insert(max(before) + 1 if before else 0, box)
    order = 0
    numbered = []
    for box in out:
        if box.label not in SKIP_ORDER:
            order += 1
            box = box if box.order == order else dataclasses.replace(box, order=order)
        numbered.append(box)
    return numbered


def _is_text(box: LayoutBox, chars: Sequence[Char], gray: np.ndarray) -> bool:
    x1, y1, x2, y2 = (int(v) for v in box.coordinate)
    inside = [c for c in chars if x1 <= c.centre[0] <= x2 and y1 <= c.centre[1] <= y2]
    if len(inside) < MIN_PICTURE_TEXT:
        return False
    ink = layertext.ink_mask(gray[max(0, y1):y2, max(0, x1):x2])
    return layertext.covered_share(inside, ink, (max(0, x1), max(0, y1))) >= layertext.MIN_INK_COVERED


def _union(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


def _padded(box: Box, line_height: float, width: int, height: int) -> Box:
    pad = PAD * line_height
    return (max(0.0, box[0] - pad), max(0.0, box[1] - pad), min(float(width), box[2] + pad),
            min(float(height), box[3] + pad))


def _neighbour(group: Box, line_height: float, coords: list[list[float]],
               boxes: Sequence[LayoutBox]) -> int | None:
    """A prose box the group continues: right above or below it in the same column, or beside it on its
    line, and growing it to take the group in would not run it into another box."""
    for i, (x1, y1, x2, y2) in enumerate(coords):
        if boxes[i].label not in PROSE_LABELS:
            continue
        gap = max(group[1] - y2, y1 - group[3])
        overlap = min(group[2], x2) - max(group[0], x1)
        below = gap < BLOCK_GAP * line_height and overlap > 0.5 * (group[2] - group[0])
        beside = (min(group[3], y2) - max(group[1], y1) > 0.5 * (group[3] - group[1])
                  and max(group[0] - x2, x1 - group[2]) < 2 * line_height)
        if not (below or beside):
            continue
        grown = _union(coords[i], group)
        if not any(_intersects(grown, other) for j, other in enumerate(coords) if j != i):
            return i
    return None


def _intersects(a: Sequence[float], b: Sequence[float]) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > 0 and min(a[3], b[3]) - max(a[1], b[1]) > 0
