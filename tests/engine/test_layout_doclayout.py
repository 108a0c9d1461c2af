"""GPU-profile layout: PP-DocLayoutV3/V2 through transformers, on tiny random checkpoints loaded from disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from devkit.documents import render_page, sample_pdf
from docengine.layout.doclayout import DocLayout, class_map, mask_polygon, order_seq
from docengine.layout.labels import LABEL_IDS, LABELS
from docengine.layout.postprocess import postprocess
from docengine.profiles import build_detector
from docengine.settings import EngineSettings
from docengine.types import Detection, LayoutParams
from tests.engine.tiny_doclayout import build_tiny_doclayout


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models are dominated by thread overhead on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("doclayout")
    return {v: build_tiny_doclayout(root / v, v) for v in ("v3", "v2")}


@pytest.fixture(scope="module")
def pages() -> list[np.ndarray]:
    pdf, _ = sample_pdf(2)
    return [render_page(pdf, 0, dpi=60), render_page(pdf, 1, dpi=60), render_page(pdf, 0, dpi=40)]


def detect_counting_batches(detector: DocLayout,
                            pages: list[np.ndarray]) -> tuple[list[list[Detection]], list[int]]:
    """Detections, and the batch size of every forward pass that produced them."""
    batches: list[int] = []
    hook = detector.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: batches.append(len(kwargs["pixel_values"])), with_kwargs=True)
    try:
        return detector.detect(pages), batches
    finally:
        hook.remove()


@pytest.fixture(scope="module")
def results(model_dirs: dict[str, Path], pages: list[np.ndarray]) -> dict[str, list[list[Detection]]]:
    out = {}
    for version, path in model_dirs.items():
        settings = EngineSettings(profile="gpu", layout_model_dir=str(path), layout_device="cpu",
                                  layout_batch_size=2)
        detector = build_detector(settings)
        assert isinstance(detector, DocLayout)
        out[version], batches = detect_counting_batches(detector, pages)
        assert batches == [2, 1]                                  # 3 pages in chunks of the batch size
    return out


@pytest.mark.parametrize("version", ["v3", "v2"])
def test_one_result_per_page_with_pp_doclayout_ids(results, pages, version: str) -> None:
    per_page = results[version]
    assert len(per_page) == len(pages)
    for dets in per_page:
        assert dets and all(0 <= d.cls_id < len(LABELS) and 0.1 <= d.score <= 1 for d in dets)
        assert all(d.order_key is not None and d.order_key >= 0 for d in dets)
        assert len({d.order_key for d in dets}) > 1
    assert [d.box for d in per_page[0]] != [d.box for d in per_page[2]]   # outputs depend on the page


@pytest.mark.parametrize("version", ["v3", "v2"])
def test_postprocessed_boxes_lie_on_the_page(results, pages, version: str) -> None:
    for page, dets in zip(pages, results[version], strict=True):
        height, width = page.shape[:2]
        boxes = postprocess(dets, LayoutParams(threshold=0.3), (width, height))
        assert boxes
        for box in boxes:
            x1, y1, x2, y2 = box.coordinate
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
            if version == "v2":
                assert box.polygon_points is None
            else:
                assert box.polygon_points is not None and len(box.polygon_points) >= 4
                assert all(0 <= x <= width and 0 <= y <= height for x, y in box.polygon_points)


def test_v3_has_polygons_and_v2_has_none(results) -> None:
    assert all(d.polygon is not None and len(d.polygon) >= 4 for d in results["v3"][0])
    assert all(d.polygon is None for d in results["v2"][0])


def test_detection_is_deterministic_and_independent_of_batching(model_dirs, pages, results) -> None:
    alone = DocLayout(model_dirs["v3"], device="cpu", batch_size=1)
    again = alone.detect(pages)
    for got, want in zip(again, results["v3"], strict=True):
        assert [d.cls_id for d in got] == [d.cls_id for d in want]
        assert [d.order_key for d in got] == [d.order_key for d in want]
        np.testing.assert_allclose([d.box for d in got], [d.box for d in want], rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose([d.score for d in got], [d.score for d in want], rtol=1e-5)


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="HPS_LAYOUT_MODEL_DIR"):
        build_detector(EngineSettings(profile="gpu", layout_model_dir=""))
    with pytest.raises(FileNotFoundError, match="config.json"):
        build_detector(EngineSettings(profile="gpu", layout_model_dir=str(tmp_path)))


def test_class_map_by_name_or_by_id() -> None:
    swapped = dict(enumerate(LABELS)) | {0: "Paragraph Title", 17: "abstract"}
    with pytest.raises(ValueError):
        class_map({0: "text", 1: "cat"})
    mapped = class_map(dict(enumerate(reversed(LABELS))))
    assert mapped[0] == LABEL_IDS["vision_footnote"] and mapped[24] == LABEL_IDS["abstract"]
    assert class_map(swapped)[[0, 17]].tolist() == [LABEL_IDS["paragraph_title"], LABEL_IDS["abstract"]]
    collapsed = {i: ("formula" if name.endswith("formula") else name) for i, name in enumerate(LABELS)}
    assert class_map(collapsed).tolist() == list(range(25))                  # names ambiguous: ids are kept


def test_order_seq_ranks_queries_by_pairwise_votes() -> None:
    # P[i, j] high: query i reads before query j. Intended order: 2, 0, 1.
    before = {(2, 0), (2, 1), (0, 1)}
    logits = torch.tensor([[[8.0 if (i, j) in before else -8.0 for j in range(3)] for i in range(3)]])
    assert order_seq(logits).tolist() == [[1, 2, 0]]


def test_mask_polygon_outlines_the_mask_inside_the_box() -> None:
    mask = np.zeros((200, 200), dtype=np.uint8)
    mask[50:150, 50:100] = 1                                      # an L: left half full height, then a foot
    mask[120:150, 100:150] = 1
    polygon = mask_polygon(mask, np.array([200.0, 200.0, 600.0, 600.0]), (800, 800))
    assert len(polygon) == 6
    xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
    assert min(xs) >= 199 and max(xs) <= 601 and min(ys) >= 199 and max(ys) <= 601
    empty = mask_polygon(np.zeros((200, 200), dtype=np.uint8), np.array([10.0, 20.0, 30.0, 40.0]), (800, 800))
    assert empty == [(10, 20), (30, 20), (30, 40), (10, 40)]
