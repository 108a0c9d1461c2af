"""Layout post-processing on synthetic detections: request overrides and every step of the PaddleX rules."""

from __future__ import annotations

import pytest

from contract.models import LayoutParsingRequest
from docengine.layout.labels import LABEL_IDS, LABELS, NUM_LABELS
from docengine.layout.postprocess import filter_overlap_boxes, postprocess
from docengine.layout.postprocess import resolve_params as resolve_layout
from docengine.options import layout_overrides
from docengine.types import Detection, LayoutBox, LayoutParams

PAGE = (1000, 1400)       # width, height: portrait


def det(label: str, box: tuple[float, float, float, float], score: float = 0.9, order: float | None = None,
        polygon: list[tuple[float, float]] | None = None) -> Detection:
    return Detection(LABEL_IDS[label], score, box, order, polygon)


def run(dets: list[Detection], page: tuple[int, int] = PAGE, **params) -> list[LayoutBox]:
    defaults = dict(threshold=0.5, nms=True, unclip_ratio=1.0, merge_mode="union", shape_mode="auto")
    return postprocess(dets, LayoutParams(**{**defaults, **params}), page)


def request(**fields) -> LayoutParsingRequest:
    return LayoutParsingRequest.model_validate({"file": "eA==", **fields})


def resolve_params(defaults: LayoutParams, req: LayoutParsingRequest) -> LayoutParams:
    return resolve_layout(defaults, layout_overrides(req))


# --- resolve_params ----------------------------------------------------------------------------------------

DEFAULTS = LayoutParams(threshold=0.3, nms=True, unclip_ratio=(1.0, 1.0),
                        merge_mode={LABEL_IDS["paragraph_title"]: "large"}, shape_mode="auto")


def test_unset_request_fields_keep_the_defaults() -> None:
    params = resolve_params(DEFAULTS, request())
    assert params == DEFAULTS


def test_scalar_overrides_replace_the_default_for_every_class() -> None:
    req = request(layoutThreshold=0.6, layoutNms=False, layoutUnclipRatio=[1.2, 1.1],
                  layoutMergeBboxesMode="small", layoutShapeMode="rect")
    params = resolve_params(DEFAULTS, req)
    assert params == LayoutParams(threshold=0.6, nms=False, unclip_ratio=(1.2, 1.1), merge_mode="small",
                                  shape_mode="rect")


def test_per_class_maps_from_json_change_only_the_classes_they_name() -> None:
    req = LayoutParsingRequest.model_validate_json(
        '{"file": "eA==", "layoutThreshold": {"22": 0.7, "99": 0.1}, "layoutUnclipRatio": {"21": [1.5, 1.2]},'
        ' "layoutMergeBboxesMode": {"14": "small"}}')
    params = resolve_params(DEFAULTS, req)
    assert isinstance(params.threshold, dict) and set(params.threshold) == set(range(NUM_LABELS))
    assert params.threshold[LABEL_IDS["text"]] == 0.7
    assert params.threshold[LABEL_IDS["table"]] == 0.3                      # default scalar kept
    assert isinstance(params.unclip_ratio, dict)
    assert params.unclip_ratio[LABEL_IDS["table"]] == (1.5, 1.2)
    assert params.unclip_ratio[LABEL_IDS["text"]] == (1.0, 1.0)
    assert isinstance(params.merge_mode, dict)
    assert params.merge_mode[LABEL_IDS["image"]] == "small"
    assert params.merge_mode[LABEL_IDS["paragraph_title"]] == "large"       # default map entry kept
    assert params.merge_mode[LABEL_IDS["text"]] == "union"                  # absent from both: union


def test_request_map_over_default_map_keeps_the_tuned_classes() -> None:
    defaults = LayoutParams(threshold={LABEL_IDS["text"]: 0.4, LABEL_IDS["seal"]: 0.45})
    params = resolve_params(defaults, request(layoutThreshold={"5": 0.9}))
    assert isinstance(params.threshold, dict)
    assert (params.threshold[5], params.threshold[LABEL_IDS["text"]], params.threshold[LABEL_IDS["seal"]]) \
        == (0.9, 0.4, 0.45)
    assert params.threshold[LABEL_IDS["table"]] == 0.5                      # absent from the default map


def test_resolved_map_drives_postprocess() -> None:
    params = resolve_params(LayoutParams(threshold=0.3), request(layoutThreshold={"22": 0.8}))
    dets = [det("text", (0, 0, 100, 50), 0.6), det("table", (0, 100, 100, 200), 0.4)]
    boxes = postprocess(dets, params, PAGE)
    assert [b.label for b in boxes] == ["table"]


# --- postprocess -------------------------------------------------------------------------------------------


def test_threshold_is_per_class_and_strict() -> None:
    dets = [det("text", (0, 0, 100, 50), 0.5), det("text", (0, 100, 100, 150), 0.51),
            det("table", (0, 200, 100, 300), 0.35)]
    assert [b.coordinate[1] for b in run(dets)] == [100]
    by_class = run(dets, threshold={LABEL_IDS["table"]: 0.3})                  # text: PaddleX's fallback 0.5
    assert [(b.label, b.coordinate[1]) for b in by_class] == [("text", 100), ("table", 200)]


def test_nms_same_class_at_iou_06_cross_class_only_near_identical() -> None:
    a = det("text", (0, 0, 100, 100), 0.9)
    same_overlapping = det("text", (0, 20, 100, 120), 0.8)        # IoU ~0.67
    same_apart = det("text", (0, 50, 100, 150), 0.85)             # IoU ~0.33
    other_class = det("table", (0, 5, 100, 105), 0.95)            # IoU ~0.9
    boxes = run([a, same_overlapping, same_apart, other_class])
    assert sorted((b.label, b.score) for b in boxes) == [("table", 0.95), ("text", 0.85), ("text", 0.9)]
    duplicate = det("table", (0, 0, 100, 100), 0.6)               # one query, two labels: same box
    assert [b.label for b in run([a, duplicate])] == ["text"]
    assert len(run([a, same_overlapping, duplicate], nms=False)) == 3


def test_page_sized_images_are_dropped_by_orientation() -> None:
    text = det("text", (10, 10, 50, 50))
    portrait_92 = det("image", (0, 0, 1000, 1288))
    portrait_95 = det("image", (0, 0, 1000, 1330))
    assert len(run([portrait_92, text])) == 2
    assert [b.label for b in run([portrait_95, text])] == ["text"]
    assert len(run([portrait_95])) == 1                            # alone, it stays
    landscape_85 = det("image", (0, 0, 1400, 850))
    assert [b.label for b in run([landscape_85, text], page=(1400, 1000))] == ["text"]


def test_containment_merge_modes() -> None:
    title = det("paragraph_title", (0, 0, 500, 60), 0.9, order=0)
    inside = det("text", (10, 5, 300, 55), 0.8, order=1)          # wholly inside the title
    other = det("text", (0, 100, 500, 200), 0.8, order=2)
    pt = LABEL_IDS["paragraph_title"]
    assert len(run([title, inside, other], merge_mode="union")) == 3
    assert [b.coordinate for b in run([title, inside, other], merge_mode={pt: "large"})] \
        == [[0, 0, 500, 60], [0, 100, 500, 200]]
    assert len(run([title, inside, other], merge_mode={pt: "small"})) == 3   # nothing contains the title
    small_text = run([title, inside, other], merge_mode={LABEL_IDS["text"]: "small"})
    assert [b.coordinate for b in small_text] == [[10, 5, 300, 55], [0, 100, 500, 200]]   # the container goes
    assert len(run([title, inside, other], merge_mode="large")) == 2
    assert len(run([title, inside, other], merge_mode="small")) == 2


def test_sorted_by_order_key_and_numbered_among_read_labels() -> None:
    dets = [det("text", (0, 300, 100, 350), order=3), det("table", (0, 200, 100, 280), order=2),
            det("paragraph_title", (0, 0, 100, 40), order=0), det("header", (0, 0, 100, 10), order=None),
            det("text", (0, 100, 100, 150), order=1)]
    boxes = run(dets)
    assert [b.label for b in boxes] == ["paragraph_title", "text", "table", "text", "header"]
    assert [b.order for b in boxes] == [1, 2, None, 3, None]
    assert boxes[0].to_json()["order"] == 1 and "polygon_points" not in boxes[0].to_json()


def test_unclip_grows_around_the_centre_then_clips() -> None:
    dets = [det("text", (100, 100, 300, 200)), det("table", (900, 1300, 990, 1390))]
    boxes = run(dets, unclip_ratio={LABEL_IDS["text"]: (1.5, 1.0), LABEL_IDS["table"]: 2.0})
    assert [b.coordinate for b in boxes] == [[50, 100, 350, 200], [855, 1255, 1000, 1400]]
    assert run(dets[:1], unclip_ratio=(1.0, 2.0))[0].coordinate == [100, 50, 300, 250]


def test_boxes_are_clipped_and_empty_ones_dropped() -> None:
    boxes = run([det("text", (-20, -10, 200, 100)), det("text", (1100, 10, 1200, 100))])
    assert [b.coordinate for b in boxes] == [[0, 0, 200, 100]]


L_SHAPE = [(0, 0), (400, 0), (400, 100), (100, 100), (100, 300), (0, 300)]
RECTISH = [(0, 0), (400, 0), (400, 300), (0, 300)]
TILTED = [(10, 0), (400, 20), (390, 300), (0, 280)]


@pytest.mark.parametrize(("polygon", "mode", "points"), [
    (L_SHAPE, "rect", None),
    (L_SHAPE, "poly", 6),
    (L_SHAPE, "quad", 4),
    (L_SHAPE, "auto", 6),        # far from any quad: the polygon
    (RECTISH, "auto", 4),        # its box
    (TILTED, "auto", 4),         # close to its rotated rectangle: the quad
])
def test_polygons_follow_the_shape_mode(polygon, mode, points) -> None:
    (box,) = run([det("image", (0, 0, 400, 300), polygon=polygon)], shape_mode=mode)
    if points is None:
        assert box.polygon_points is None
        return
    assert box.polygon_points is not None and len(box.polygon_points) == points
    if polygon is RECTISH:
        assert box.polygon_points == [[0, 0], [400, 0], [400, 300], [0, 300]]
    if polygon is TILTED:
        assert box.polygon_points != [[0, 0], [400, 0], [400, 300], [0, 300]]
        assert all(0 <= x <= PAGE[0] and 0 <= y <= PAGE[1] for x, y in box.polygon_points)


def test_no_polygon_without_a_predicted_one() -> None:
    assert run([det("text", (0, 0, 50, 50))], shape_mode="poly")[0].polygon_points is None


# --- filter_overlap_boxes ----------------------------------------------------------------------------------


def lbox(label: str, coordinate: list[float], order: int | None = None,
         polygon: list[list[float]] | None = None) -> LayoutBox:
    return LayoutBox(LABEL_IDS[label], label, 0.9, coordinate, order, polygon)


def test_filter_drops_references_slivers_and_inline_formulas_over_text() -> None:
    boxes = [lbox("reference", [0, 0, 100, 100]), lbox("text", [0, 200, 100, 205]),
             lbox("text", [0, 300, 500, 400], order=1), lbox("inline_formula", [100, 320, 200, 350], order=2)]
    assert [b.label for b in filter_overlap_boxes(boxes)] == ["text"]


def test_filter_drops_the_smaller_of_overlapping_regions_but_keeps_orders() -> None:
    outer = lbox("text", [0, 0, 500, 300], order=1)
    inner = lbox("paragraph_title", [10, 10, 300, 200], order=2)
    apart = lbox("text", [0, 400, 500, 500], order=3)
    kept = filter_overlap_boxes([inner, outer, apart])
    assert kept == [outer, apart] and [b.order for b in kept] == [1, 3]
    touching = lbox("text", [400, 0, 600, 300])                  # overlaps by half: both stay
    assert len(filter_overlap_boxes([outer, touching])) == 2


@pytest.mark.parametrize(("big", "small", "kept"), [
    ("image", "text", 2), ("table", "image", 2), ("chart", "seal", 2),
    ("table", "text", 1), ("text", "table", 1), ("image", "image", 1),
])
def test_filter_keeps_visual_regions_meeting_other_labels(big: str, small: str, kept: int) -> None:
    boxes = [lbox(big, [0, 0, 500, 500]), lbox(small, [100, 100, 300, 300])]
    assert len(filter_overlap_boxes(boxes)) == kept


def test_filter_checks_polygons_when_boxes_overlap() -> None:
    outer = lbox("text", [0, 0, 400, 300], polygon=[[0, 0], [400, 0], [400, 100], [100, 100], [100, 300],
                                                    [0, 300]])
    inner = lbox("text", [150, 150, 350, 280], polygon=[[150, 150], [350, 150], [350, 280], [150, 280]])
    assert len(filter_overlap_boxes([outer, inner])) == 2         # the L does not reach into the inner box
    inner_in_l = lbox("text", [10, 10, 90, 250], polygon=[[10, 10], [90, 10], [90, 250], [10, 250]])
    assert filter_overlap_boxes([outer, inner_in_l]) == [outer]


def test_labels_are_the_25_pp_doclayout_ids() -> None:
    assert len(LABELS) == 25 and LABELS[22] == "text" and LABELS[19] == "reference_content"
