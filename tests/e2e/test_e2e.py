"""All three real tiers with the real CPU recogniser: real documents in, PaddleX-shaped answers with the right
text, tables, reading order, Markdown and images out, and tables split over pages merged back."""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from devkit.documents import (
    CHINESE,
    FOOTER,
    FORMULA,
    HEADER,
    HEADING,
    PARAGRAPHS,
    REPORT_FOOTER,
    TABLE,
    TITLE,
    b64,
    char_accuracy,
    encode_image,
    multipage_tiff,
    render_page,
    report_page,
    sample_pdf,
)
from devkit.stack import Stack, running_stack
from docengine.layout.labels import LABELS
from tests.e2e import docs
from tests.engine.text_stand_ins import answer_words
from tests.engine.text_stand_ins import blocks as text_blocks

pytestmark = pytest.mark.slow

MODEL_SETTINGS = {"use_doc_preprocessor", "use_layout_detection", "use_chart_recognition",
                  "use_seal_recognition", "use_ocr_for_image_block", "format_block_content",
                  "merge_layout_blocks", "markdown_ignore_labels", "return_layout_polygon_points"}
BLOCK_KEYS = {"block_label", "block_content", "block_bbox", "block_id", "block_order", "group_id"}
BOX_KEYS = {"cls_id", "label", "score", "coordinate", "order"}
A4_AT_SCALE_2 = {"width": 1190, "height": 1684}
DATA_INFO_EXTENSIONS = {"blockSources", "recoveredBlocks"}   # what PaddleX clients ignore


def paddlex_info(info: dict) -> dict:
    return {key: value for key, value in info.items() if key not in DATA_INFO_EXTENSIONS}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e"), recogniser="cpu", workers=1) as running:
        yield running


def parse(stack: Stack, file: bytes, file_type: int | None, **fields: Any) -> tuple[httpx.Response, dict]:
    body = {"file": b64(file), **({"fileType": file_type} if file_type is not None else {}), **fields}
    resp = httpx.post(f"{stack.url}/layout-parsing", json=body, timeout=120)
    envelope = resp.json()
    assert resp.status_code == 200 and envelope["errorCode"] == 0, envelope
    return resp, envelope


def decode_jpeg(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    image.load()
    assert image.format == "JPEG"
    return image


def lines_of(page: dict) -> list[str]:
    return [line for block in page["prunedResult"]["parsing_res_list"]
            for line in block["block_content"].splitlines() if line.strip()]


def text_accuracy(truths: list[str], page: dict) -> dict[str, float]:
    """Each ground-truth paragraph (one line on the page): its accuracy on the best recognised line."""
    lines = lines_of(page)
    return {truth: max((char_accuracy(truth, line) for line in lines), default=0.0) for truth in truths}


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str) -> list[list[str]]:
    parser = _Cells()
    parser.feed(html)
    return parser.rows


def assert_table(html: str, truth: list[list[str]]) -> None:
    rows = table_rows(html)
    assert [len(r) for r in rows] == [len(r) for r in truth], rows
    got, want = " ".join(c for r in rows for c in r), " ".join(c for r in truth for c in r)
    assert char_accuracy(want, got) >= 0.9, (want, got)


def assert_page_shape(page: dict, size: dict[str, int], *, visualized: bool) -> None:
    """Every field of one `layoutParsingResults` entry, as PaddleX's PaddleOCR-VL service shapes it."""
    expected = {"prunedResult", "markdown"} | ({"outputImages", "inputImage"} if visualized else set())
    assert set(page) == expected
    pruned = page["prunedResult"]
    assert {"page_count", "width", "height", "model_settings", "layout_det_res",
            "parsing_res_list"} <= set(pruned)
    assert pruned["page_count"] is None
    assert (pruned["width"], pruned["height"]) == (size["width"], size["height"])
    assert set(pruned["model_settings"]) == MODEL_SETTINGS
    assert pruned["model_settings"]["use_layout_detection"] is True
    assert "input_path" not in pruned and "page_index" not in pruned

    boxes = pruned["layout_det_res"]["boxes"]
    assert boxes
    for box in boxes:
        assert BOX_KEYS <= set(box) <= BOX_KEYS | {"polygon_points"}
        assert box["label"] == LABELS[box["cls_id"]] and 0 <= box["score"] <= 1
        x1, y1, x2, y2 = box["coordinate"]
        assert all(isinstance(v, int) for v in box["coordinate"])
        assert 0 <= x1 < x2 <= size["width"] and 0 <= y1 < y2 <= size["height"]
    orders = [b["order"] for b in boxes if b["order"] is not None]
    assert sorted(orders) == list(range(1, len(orders) + 1))

    blocks = pruned["parsing_res_list"]
    assert blocks
    for index, block in enumerate(blocks):
        assert BLOCK_KEYS <= set(block)
        assert block["block_id"] == index and isinstance(block["group_id"], int)
        assert isinstance(block["block_content"], str) and block["block_label"] in LABELS
        assert len(block["block_bbox"]) == 4 and all(isinstance(v, int) for v in block["block_bbox"])
        assert block["block_order"] is None or isinstance(block["block_order"], int)

    markdown = page["markdown"]
    assert set(markdown) == {"text", "images"} and isinstance(markdown["text"], str)
    assert isinstance(markdown["images"], dict)
    for path, data in markdown["images"].items():
        assert path.startswith("imgs/") and path.endswith(".jpg")
        decode_jpeg(data)
    if visualized:
        assert set(page["outputImages"]) == {"layout_det_res"}
        assert decode_jpeg(page["outputImages"]["layout_det_res"]).size == (size["width"], size["height"])
        assert decode_jpeg(page["inputImage"]).size == (size["width"], size["height"])


def block_with(page: dict, text: str) -> dict:
    """The block whose content holds the best match for `text`."""
    blocks = page["prunedResult"]["parsing_res_list"]
    def score(block: dict) -> float:
        return max((char_accuracy(text, line) for line in block["block_content"].splitlines()), default=0.0)

    return max(blocks, key=score)


def test_a_multi_page_pdf_comes_back_in_paddlex_shape_with_its_text_table_and_order(stack: Stack) -> None:
    pdf, truths = sample_pdf(2)
    resp, envelope = parse(stack, pdf, 0, visualize=True, logId="e2e-pdf")
    assert set(envelope) == {"logId", "errorCode", "errorMsg", "result"}
    assert envelope["logId"] == "e2e-pdf" == resp.headers["x-request-id"]
    assert envelope["errorCode"] == 0 and envelope["errorMsg"] == "Success"
    result = envelope["result"]
    assert set(result) == {"layoutParsingResults", "dataInfo"}
    assert paddlex_info(result["dataInfo"]) == {"type": "pdf", "numPages": 2,
                                                "pages": [A4_AT_SCALE_2, A4_AT_SCALE_2]}
    # the CPU profile takes the text of text blocks from the PDF itself (textSource auto), tables not
    assert result["dataInfo"]["blockSources"]["pdf"] > 0 and result["dataInfo"]["blockSources"]["vlm"] >= 2
    pages = result["layoutParsingResults"]
    assert len(pages) == 2

    for index, (page, truth) in enumerate(zip(pages, truths, strict=True)):
        assert_page_shape(page, A4_AT_SCALE_2, visualized=True)
        # The Chinese paragraph of devkit.documents has no embedded font, so PDFium draws nothing for it;
        # Chinese is checked on images and on documents with an embedded font below.
        accuracy = text_accuracy([t for t in truth.texts if t != CHINESE], page)
        assert min(accuracy.values()) >= 0.9, accuracy
        blocks = page["prunedResult"]["parsing_res_list"]
        tables = [b for b in blocks if b["block_label"] == "table"]
        assert len(tables) == 1
        assert_table(tables[0]["block_content"], TABLE)
        # Header and footer are recognised but, as PaddleX's ignore list says, left out of the Markdown.
        labels = {b["block_label"]: b["block_content"] for b in blocks}
        assert char_accuracy(HEADER, labels["header"]) >= 0.9
        assert char_accuracy(f"{FOOTER} {index + 1}", labels["footer"]) >= 0.9
        markdown = page["markdown"]["text"]
        assert HEADER not in markdown and FOOTER not in markdown
        assert "<table" in markdown and markdown.count("<tr>") == len(TABLE)
        assert char_accuracy(FORMULA, block_with(page, FORMULA)["block_content"]) >= 0.9

    first = pages[0]
    # Reading order: title, then heading, then the paragraphs, in the blocks and in the Markdown.
    ordered = [block_with(first, text) for text in (TITLE, HEADING, *PARAGRAPHS)]
    ids = [b["block_id"] for b in ordered]
    assert ids == sorted(ids) and len(set(ids[:3])) == 3, ordered
    orders = [b["block_order"] for b in ordered]
    assert all(o is not None for o in orders) and orders == sorted(orders)
    markdown = first["markdown"]["text"]
    assert markdown.lstrip().startswith("#") and TITLE in markdown.splitlines()[0]
    positions = [markdown.find(text) for text in (TITLE, HEADING, PARAGRAPHS[0][:30], PARAGRAPHS[1][:30])]
    assert -1 not in positions and positions == sorted(positions), positions


@pytest.mark.parametrize("fmt,file_type", [("PNG", 1), ("JPEG", 1), ("PNG", None)])
def test_an_image_is_parsed_with_its_chinese_and_english_text(stack: Stack, fmt: str,
                                                              file_type: int | None) -> None:
    pdf, truths = sample_pdf(1)
    rgb = render_page(pdf, 0, dpi=144)  # pymupdf draws the Chinese line from its own fonts
    image = encode_image(rgb, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    _, envelope = parse(stack, image, file_type, visualize=False)
    height, width = rgb.shape[:2]
    assert paddlex_info(envelope["result"]["dataInfo"]) == {"type": "image", "width": width, "height": height}
    assert envelope["result"]["dataInfo"].get("blockSources", {}).get("pdf", 0) == 0
    [page] = envelope["result"]["layoutParsingResults"]
    assert_page_shape(page, {"width": width, "height": height}, visualized=False)
    accuracy = text_accuracy(truths[0].texts, page)
    assert min(accuracy.values()) >= 0.9, accuracy  # CHINESE included
    [table] = [b for b in page["prunedResult"]["parsing_res_list"] if b["block_label"] == "table"]
    assert_table(table["block_content"], TABLE)


def test_a_multi_page_tiff_is_split_into_pages(stack: Stack) -> None:
    pdf, truths = sample_pdf(2, with_table=False)
    frames = [render_page(pdf, i, dpi=144) for i in range(2)]
    _, envelope = parse(stack, multipage_tiff(frames), 1, visualize=True)
    sizes = [{"width": f.shape[1], "height": f.shape[0]} for f in frames]
    assert paddlex_info(envelope["result"]["dataInfo"]) == {"type": "tiff", "numPages": 2, "pages": sizes}
    pages = envelope["result"]["layoutParsingResults"]
    assert len(pages) == 2
    for page, truth, size in zip(pages, truths, sizes, strict=True):
        assert_page_shape(page, size, visualized=True)
        accuracy = text_accuracy(truth.texts, page)
        assert min(accuracy.values()) >= 0.9, accuracy
    assert TITLE in pages[0]["markdown"]["text"] and TITLE not in pages[1]["markdown"]["text"]


def test_a_picture_comes_back_as_a_markdown_image_with_its_caption(stack: Stack) -> None:
    _, envelope = parse(stack, docs.figure_pdf(), 0, visualize=False)
    [page] = envelope["result"]["layoutParsingResults"]
    blocks = page["prunedResult"]["parsing_res_list"]
    [image] = [b for b in blocks if b["block_label"] == "image"]
    assert image["block_content"] == "" and image["block_order"] is None
    x1, y1, x2, y2 = image["block_bbox"]
    path = f"imgs/img_in_image_box_{x1}_{y1}_{x2}_{y2}.jpg"
    images = page["markdown"]["images"]
    assert list(images) == [path]
    # The crop is the picture itself: its size is the block's, and it is colourful, not blank paper.
    crop = decode_jpeg(images[path])
    assert crop.size == (x2 - x1, y2 - y1)
    assert len(np.unique(np.asarray(crop.convert("RGB").resize((32, 32))).reshape(-1, 3), axis=0)) > 50
    markdown = page["markdown"]["text"]
    assert f'src="{path}"' in markdown
    caption = block_with(page, docs.CAPTION)
    assert char_accuracy(docs.CAPTION, caption["block_content"]) >= 0.9
    assert markdown.index(path) < markdown.index(caption["block_content"])
    accuracy = text_accuracy([TITLE, *PARAGRAPHS, CHINESE], page)
    assert min(accuracy.values()) >= 0.9, accuracy  # Chinese too: this PDF embeds its CJK font


def test_a_table_split_over_two_pages_is_merged_by_restructure_pages(stack: Stack) -> None:
    _, envelope = parse(stack, docs.split_table_pdf(), 0, visualize=False)
    pages = envelope["result"]["layoutParsingResults"]
    assert len(pages) == 2
    first_rows = [docs.SPLIT_COLUMNS, *docs.SPLIT_ROWS[:docs.SPLIT_AT]]
    [top] = [b for b in pages[0]["prunedResult"]["parsing_res_list"] if b["block_label"] == "table"]
    [rest] = [b for b in pages[1]["prunedResult"]["parsing_res_list"] if b["block_label"] == "table"]
    assert_table(top["block_content"], first_rows)
    assert_table(rest["block_content"], docs.SPLIT_ROWS[docs.SPLIT_AT:])
    assert min(text_accuracy([TITLE, HEADING, *PARAGRAPHS, CHINESE], pages[0]).values()) >= 0.9

    inputs = [{"prunedResult": p["prunedResult"], "markdownImages": p["markdown"]["images"]} for p in pages]
    resp = httpx.post(f"{stack.url}/restructure-pages", json={"pages": inputs, "logId": "e2e-merge"},
                      timeout=60)
    merged = resp.json()
    assert resp.status_code == 200 and merged["errorCode"] == 0 and merged["logId"] == "e2e-merge", merged
    assert set(merged["result"]) == {"layoutParsingResults"}
    out = merged["result"]["layoutParsingResults"]
    assert len(out) == 2 and all(set(p) == {"prunedResult", "markdown"} for p in out)
    [top] = [b for b in out[0]["prunedResult"]["parsing_res_list"] if b["block_label"] == "table"]
    [rest] = [b for b in out[1]["prunedResult"]["parsing_res_list"] if b["block_label"] == "table"]
    assert_table(top["block_content"], [docs.SPLIT_COLUMNS, *docs.SPLIT_ROWS])
    assert rest["block_content"] == "" and rest["global_group_id"] == top["global_block_id"]
    assert out[0]["markdown"]["text"].count("<tr>") == 1 + len(docs.SPLIT_ROWS)
    assert "<table" not in out[1]["markdown"]["text"]

    resp = httpx.post(f"{stack.url}/restructure-pages", json={"pages": inputs, "concatenatePages": True},
                      timeout=60)
    [whole] = resp.json()["result"]["layoutParsingResults"]
    assert whole["prunedResult"]["page_count"] == 2 and len(whole["prunedResult"]["layout_det_res"]) == 2
    markdown = whole["markdown"]["text"]
    assert markdown.count("<table") == 1 and markdown.count("<tr>") == 1 + len(docs.SPLIT_ROWS)
    assert markdown.index(TITLE) < markdown.index(CHINESE) < markdown.index("<table")


@pytest.mark.parametrize("kind", ["pdf", "png"])
def test_text_the_layout_model_misses_comes_back_once_with_the_footer_whole(stack: Stack, kind: str) -> None:
    """The page on which PP-PicoDet gave the paragraphs no box and cut the footer's first and last glyphs."""
    page = report_page()
    file = page.pdf if kind == "pdf" else encode_image(render_page(page.pdf, 0, dpi=144))
    _, envelope = parse(stack, file, 0 if kind == "pdf" else 1, visualize=False)
    assert answer_words(envelope["result"]) == Counter(page.words())
    footers = [b["block_content"] for b in text_blocks(envelope["result"]) if "page 1" in b["block_content"]]
    assert footers == [REPORT_FOOTER]
