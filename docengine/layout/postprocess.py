"""Layout post-processing: from a detector's raw regions to the `layout_det_res.boxes` of a page.

The steps and their constants follow PaddleX's layout-analysis post-process, so that a request gives the
same boxes here as on upstream serving. Geometry is numpy, with OpenCV for polygons (rotated rectangles,
polygon overlap by rasterising).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import cv2
import numpy as np

from docengine.layout.labels import LABEL_IDS, LABELS, NUM_LABELS, SKIP_ORDER
from docengine.types import Detection, LayoutBox, LayoutOverrides, LayoutParams

NMS_IOU_SAME = 0.6          # same class: the lower-scored box goes at this IoU
NMS_IOU_DIFF = 0.98         # different classes: only near-identical boxes
CONTAINED = 0.9             # share of a box's area inside another for it to count as contained
IMAGE_MAX_AREA = {"landscape": 0.82, "portrait": 0.93}
AUTO_RECT_IOU = 0.95        # auto shape: a quad this close to the box is just the box
AUTO_QUAD_IOU = 0.8         # auto shape: a polygon this close to its quad becomes the quad
MIN_SIDE = 6                # filter_overlap_boxes: boxes thinner than this are dropped
OVERLAP_DROP = 0.7
INLINE_FORMULA_OVERLAP = 0.5
_VISUAL = frozenset({"image", "table", "seal", "chart"})
_IMAGE = LABEL_IDS["image"]

Ratio = tuple[float, float]
T = TypeVar("T")


# --- request parameters ------------------------------------------------------------------------------------


def resolve_params(defaults: LayoutParams, overrides: LayoutOverrides) -> LayoutParams:
    """A request's `layout*` fields laid over the pipeline's defaults.

    A scalar (or a `[w, h]` pair) from the request replaces the default for every class. A per-class map
    from the request changes only the classes it names: the others keep their default, so `{"22": 0.6}`
    raises the text threshold and leaves the tuned thresholds of the other classes alone. Map keys are class
    ids as strings (JSON); ids outside 0..24 are ignored. Unset fields keep the defaults.
    """
    threshold = _overlay(defaults.threshold, overrides.threshold, 0.5, float)
    unclip = _overlay(defaults.unclip_ratio, overrides.unclip_ratio, 1.0, _ratio)
    merge = _overlay(defaults.merge_mode, overrides.merge_mode, "union", str)
    return LayoutParams(
        threshold=threshold,
        nms=defaults.nms if overrides.nms is None else overrides.nms,
        unclip_ratio=unclip,
        merge_mode=merge,
        shape_mode=overrides.shape_mode or defaults.shape_mode,
    )


def _overlay(default: Any, override: Any, missing: Any, convert: Callable[[Any], Any]) -> Any:
    if override is None:
        return default
    if not isinstance(override, Mapping):
        return convert(override)
    merged = {c: convert(v) for c, v in _per_class(default, missing).items()}
    for key, value in override.items():
        cls_id = int(key)
        if 0 <= cls_id < NUM_LABELS:
            merged[cls_id] = convert(value)
    return merged


def _per_class(value: T | Mapping[int, T], missing: T) -> dict[int, T]:
    """A setting as one value per class; classes a map leaves out get PaddleX's fallback `missing`."""
    if isinstance(value, Mapping):
        return {c: value.get(c, missing) for c in range(NUM_LABELS)}
    return dict.fromkeys(range(NUM_LABELS), value)


def _ratio(value: float | tuple[float, float] | list[float]) -> Ratio:
    if isinstance(value, (tuple, list)):
        return float(value[0]), float(value[1])
    return float(value), float(value)


# --- post-process ------------------------------------------------------------------------------------------


def postprocess(dets: list[Detection], params: LayoutParams, page_size: tuple[int, int]) -> list[LayoutBox]:
    """Raw detections of one page -> its layout boxes, in reading order.

    Steps: per-class threshold; NMS; drop `image` boxes covering most of the page; containment merge; sort by
    `order_key`; polygons per shape mode; unclip; clip to the page; number `order` among labels that are read.
    `page_size` is (width, height).
    """
    width, height = page_size
    thresholds = _per_class(params.threshold, 0.5)
    dets = [d for d in dets if 0 <= d.cls_id < NUM_LABELS and d.score > thresholds[d.cls_id]]
    if not dets:
        return []
    cls = np.array([d.cls_id for d in dets])
    boxes = np.round(np.array([d.box for d in dets], dtype=np.float64))
    keep = np.arange(len(dets))

    if params.nms:
        keep = keep[_nms(boxes, cls, np.array([d.score for d in dets]))]
    keep = keep[_drop_page_sized_images(boxes[keep], cls[keep], width, height)]
    keep = keep[_merge_contained(boxes[keep], cls[keep], params.merge_mode)]
    keep = np.array(sorted(keep, key=lambda i: _order_key(dets[i])), dtype=int)

    ratios: dict[int, Any] = _per_class(params.unclip_ratio, 1.0)
    out: list[LayoutBox] = []
    for i in keep:
        det = dets[i]
        x1, y1, x2, y2 = _unclip(boxes[i], _ratio(ratios[det.cls_id]))
        x1, y1, x2, y2 = int(max(0, x1)), int(max(0, y1)), int(min(width, x2)), int(min(height, y2))
        if x2 <= x1 or y2 <= y1:
            continue
        label = LABELS[det.cls_id]
        polygon = _shape(det.polygon, boxes[i], params.shape_mode)
        if polygon is not None:
            polygon = [[min(max(x, 0.0), width), min(max(y, 0.0), height)] for x, y in polygon]
        out.append(LayoutBox(det.cls_id, label, float(det.score), [x1, y1, x2, y2], None, polygon))
    rank = 0
    for box in out:
        if box.label not in SKIP_ORDER:
            rank += 1
            box.order = rank
    return out


def _order_key(det: Detection) -> tuple[bool, float]:
    """Predicted order first; detections without one keep their incoming order after the others."""
    return (det.order_key is None, det.order_key or 0.0)


def _nms(boxes: np.ndarray, cls: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Greedy NMS by score: same-class IoU >= 0.6 or cross-class IoU >= 0.98 suppresses (inclusive pixels)."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size:
        top, rest = order[0], order[1:]
        kept.append(int(top))
        iou = _iou_inclusive(boxes[top], boxes[rest])
        limit = np.where(cls[rest] == cls[top], NMS_IOU_SAME, NMS_IOU_DIFF)
        order = rest[iou < limit]
    return np.array(kept, dtype=int)


def _iou_inclusive(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], others[:, :2])
    rb = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(rb - lt + 1, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2] + 1)
    areas = np.prod(others[:, 2:] - others[:, :2] + 1, axis=1)
    return inter / (area + areas - inter)


def _drop_page_sized_images(boxes: np.ndarray, cls: np.ndarray, width: int, height: int) -> np.ndarray:
    """Indices kept after dropping `image` boxes that are really the whole page (a scan, a background)."""
    everything = np.arange(len(boxes))
    if len(boxes) <= 1:
        return everything
    limit = IMAGE_MAX_AREA["landscape" if width > height else "portrait"] * width * height
    clipped = np.clip(boxes, 0, [width, height, width, height])
    area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    kept = everything[(cls != _IMAGE) | (area <= limit)]
    return kept if kept.size else everything


def _merge_contained(boxes: np.ndarray, cls: np.ndarray, mode: str | Mapping[int, str]) -> np.ndarray:
    """Indices kept by the containment merge.

    "Contained" means at least 90% of a box lies inside the other. A single mode applies to all pairs:
    `large` drops every contained box, `small` drops every box that contains another (unless it is itself
    contained). Per class c: `large` drops any box contained in a box of class c; `small` drops any box that
    contains a box of class c, unless that box is itself a contained box of class c; `union` keeps all.
    """
    n = len(boxes)
    inside = _containment(boxes)                       # inside[i, j]: box i is contained in box j
    keep = np.ones(n, dtype=bool)
    if isinstance(mode, str):
        if mode == "large":
            keep = ~inside.any(axis=1)
        elif mode == "small":
            keep = ~inside.any(axis=0) | inside.any(axis=1)
        return np.flatnonzero(keep)
    for cls_id, class_mode in mode.items():
        of_class = cls == cls_id
        if class_mode == "large":
            keep &= ~inside[:, of_class].any(axis=1)
        elif class_mode == "small":
            contained = inside.any(axis=1) & of_class
            contains = inside[of_class].any(axis=0)
            keep &= ~contains | contained
    return np.flatnonzero(keep)


def _containment(boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(area[:, None] > 0, inter / area[:, None], 0.0)
    np.fill_diagonal(ratio, 0.0)
    return ratio >= CONTAINED


def _unclip(box: np.ndarray, ratio: Ratio) -> tuple[float, float, float, float]:
    """Grow (or shrink) a box around its centre by (width ratio, height ratio)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half_w, half_h = (box[2] - box[0]) * ratio[0] / 2, (box[3] - box[1]) * ratio[1] / 2
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


# --- polygons ----------------------------------------------------------------------------------------------


def _shape(polygon: list[tuple[float, float]] | None, box: np.ndarray, mode: str) -> list[list[float]] | None:
    """`polygon_points` of a box: none in `rect` mode or without a predicted polygon; the polygon (`poly`),
    its minimum-area quad (`quad`), or for `auto` the simplest of box, quad and polygon that fits it."""
    if polygon is None or mode == "rect":
        return None
    x1, y1, x2, y2 = box
    rect = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(poly) < 4:
        poly = rect
    if mode == "poly":
        return poly.tolist()
    quad = _min_area_quad(poly)
    if mode == "quad":
        return quad.tolist()
    if _overlap(rect, quad, "union") >= AUTO_RECT_IOU:
        quad = rect
    return (quad if _overlap(poly, quad, "union") >= AUTO_QUAD_IOU else poly).tolist()


def _min_area_quad(poly: np.ndarray) -> np.ndarray:
    """The minimum-area rotated rectangle around a polygon, clockwise from the top-left corner."""
    quad = cv2.boxPoints(cv2.minAreaRect(poly.astype(np.float32))).astype(np.float64)
    centre = quad.mean(axis=0)
    quad = quad[np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))]
    return np.roll(quad, -int(np.argmin(quad.sum(axis=1))), axis=0)


def _overlap(a: np.ndarray, b: np.ndarray, mode: str, resolution: int = 256) -> float:
    """Overlap of two polygons (any shape), measured by filling both on a small raster.

    `union`: intersection over union; `small`: intersection over the smaller polygon.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    lo = np.minimum(a.min(axis=0), b.min(axis=0))
    span = max(float((np.maximum(a.max(axis=0), b.max(axis=0)) - lo).max()), 1e-6)
    scale = resolution / span
    masks = []
    for poly in (a, b):
        mask = np.zeros((resolution + 1, resolution + 1), dtype=np.uint8)
        cv2.fillPoly(mask, [np.round((poly - lo) * scale).astype(np.int32)], (1,))
        masks.append(mask.astype(bool))
    inter = float(np.logical_and(*masks).sum())
    if mode == "small":
        base = float(min(masks[0].sum(), masks[1].sum()))
    else:
        base = float(np.logical_or(*masks).sum())
    return inter / base if base else 0.0


# --- before cropping ---------------------------------------------------------------------------------------


def filter_overlap_boxes(boxes: list[LayoutBox]) -> list[LayoutBox]:
    """The boxes that become blocks: drops `reference` boxes, slivers, and duplicates of overlapping regions.

    Pairs are visited in order. A box thinner than 6 px goes. An `inline_formula` overlapping another box by
    more than half of the smaller one goes. Otherwise, when the smaller box of a pair lies more than 70%
    inside the other (and, with polygons, their polygons agree), the smaller one goes, except when the two
    labels differ and one of them is image, seal or chart, or a table meets one of those. `order` values
    are left as they are: `layout_det_res` keeps every box, only the blocks are filtered.
    """
    boxes = [b for b in boxes if b.label != "reference"]
    dropped: set[int] = set()
    for i, a in enumerate(boxes):
        if min(a.coordinate[2] - a.coordinate[0], a.coordinate[3] - a.coordinate[1]) < MIN_SIDE:
            dropped.add(i)
        for j in range(i + 1, len(boxes)):
            if i in dropped or j in dropped:
                continue
            b = boxes[j]
            ratio = _box_overlap_small(a.coordinate, b.coordinate)
            if "inline_formula" in (a.label, b.label):
                if ratio > INLINE_FORMULA_OVERLAP:
                    dropped.update(k for k, box in ((i, a), (j, b)) if box.label == "inline_formula")
                    continue
            if ratio <= OVERLAP_DROP:
                continue
            if a.polygon_points is not None and b.polygon_points is not None:
                if _overlap(np.array(a.polygon_points), np.array(b.polygon_points), "small") < OVERLAP_DROP:
                    continue
            labels = {a.label, b.label}
            if len(labels) > 1 and labels & _VISUAL and ("table" not in labels or labels <= _VISUAL):
                continue
            dropped.add(j if _area(a.coordinate) >= _area(b.coordinate) else i)
    return [box for k, box in enumerate(boxes) if k not in dropped]


def _area(c: list[float]) -> float:
    return abs((c[2] - c[0]) * (c[3] - c[1]))


def _box_overlap_small(a: list[float], b: list[float]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min(_area(a), _area(b))
    return inter / small if small else 0.0
