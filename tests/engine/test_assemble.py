"""One page's `layoutParsingResults[]` entry: keys, plain JSON types, images and visualisation switches."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image

from contract.models import LayoutParsingRequest
from docengine.assemble import assemble_page, reading_orders
from docengine.images import draw_layout, encode_jpeg_b64
from docengine.options import AssembleOptions, parse_options
from docengine.settings import EngineSettings
from docengine.types import Block, LayoutBox

W, H = 400, 300
MODEL_SETTINGS_KEYS = [
    "use_doc_preprocessor", "use_layout_detection", "use_chart_recognition", "use_seal_recognition",
    "use_ocr_for_image_block", "format_block_content", "merge_layout_blocks", "markdown_ignore_labels",
    "return_layout_polygon_points",
]


def page() -> np.ndarray:
    img = np.full((H, W, 3), 255, np.uint8)
    img[120:220, 40:200] = (30, 120, 200)      # the picture
    img[240:280, 250:290] = (200, 40, 40)      # a figure inside the table
    return img


def layout() -> tuple[list[LayoutBox], list[Block]]:
    poly = [[20.0, 10.0], [380.0, 10.0], [380.0, 50.0], [20.0, 50.0]]
    boxes = [
        LayoutBox(6, "doc_title", np.float32(0.97), [20.0, 10.0, 380.0, 50.0], 1, poly),
        LayoutBox(22, "text", 0.91, [20.4, 60.6, 380.2, 110.0], 2),
        LayoutBox(14, "image", 0.88, [40.0, 120.0, 200.0, 220.0], None),
        LayoutBox(21, "table", 0.93, [230.0, 230.0, 390.0, 290.0], None),
        LayoutBox(14, "image", 0.7, [250.0, 240.0, 290.0, 280.0], None),
        LayoutBox(12, "header", 0.8, [20.0, 0.0, 100.0, 8.0], None),
    ]
    crop = page()[120:220, 40:200]
    figure = "imgs/img_in_image_box_250_240_290_280.jpg"
    blocks = [
        Block("doc_title", [np.int64(20), 10, 380, 50], "Annual Report", group_id=None,
              polygon_points=poly),
        Block("text", [20, 60, 380, 110], "First line\nsecond line", group_id=1),
        Block("image", [40, 120, 200, 220], "",
              image_path="imgs/img_in_image_box_40_120_200_220.jpg", image=crop),
        Block("table", [230, 230, 390, 290],
              f'<table><tr><td>a</td><td><img src="{figure}" /></td></tr></table>'),
        Block("header", [20, 0, 100, 8], "Running head"),
    ]
    return boxes, blocks


def decode(b64: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    return img


def test_entry_keys_and_plain_json_types():
    boxes, blocks = layout()
    entry = assemble_page(page(), boxes, blocks, AssembleOptions(visualize=False))
    assert set(entry) == {"prunedResult", "markdown"}
    pruned = entry["prunedResult"]
    assert list(pruned) == ["page_count", "width", "height", "model_settings", "parsing_res_list",
                            "layout_det_res"]   # PaddleX's order
    assert pruned["page_count"] is None and (pruned["width"], pruned["height"]) == (W, H)
    assert list(pruned["model_settings"]) == MODEL_SETTINGS_KEYS
    assert pruned["model_settings"]["markdown_ignore_labels"] == [
        "number", "footnote", "header", "header_image", "footer", "footer_image", "aside_text"]

    det = pruned["layout_det_res"]["boxes"]
    poly = [[20.0, 10.0], [380.0, 10.0], [380.0, 50.0], [20.0, 50.0]]
    assert det[0] == {"cls_id": 6, "label": "doc_title", "score": det[0]["score"],
                      "coordinate": [20, 10, 380, 50], "order": 1, "polygon_points": poly}
    assert type(det[0]["score"]) is float and det[2]["order"] is None

    res = pruned["parsing_res_list"]
    assert res[0] == {"block_label": "doc_title", "block_content": "Annual Report",
                      "block_bbox": [20, 10, 380, 50], "block_id": 0, "block_order": 1, "group_id": 0,
                      "block_polygon_points": poly}
    assert [r["group_id"] for r in res] == [0, 1, 2, 3, 4]           # own index when the block has no group
    assert [r["block_order"] for r in res] == [1, 2, None, None, None]
    assert "block_polygon_points" not in res[1]
    assert type(res[0]["block_bbox"][0]) is int
    json.dumps(entry)  # numpy scalars would fail here


def test_markdown_text_and_images_include_figures_inside_tables():
    boxes, blocks = layout()
    entry = assemble_page(page(), boxes, blocks, AssembleOptions(visualize=False))
    text = entry["markdown"]["text"]
    assert text.startswith("# Annual Report\n\nFirst line\n\nsecond line\n\n")
    assert 'img src="imgs/img_in_image_box_40_120_200_220.jpg" alt="Image" width="40%"' in text
    assert "Running head" not in text
    images = entry["markdown"]["images"]
    assert set(images) == {"imgs/img_in_image_box_40_120_200_220.jpg",
                           "imgs/img_in_image_box_250_240_290_280.jpg"}
    picture = decode(images["imgs/img_in_image_box_40_120_200_220.jpg"])
    assert picture.format == "JPEG" and picture.size == (160, 100)
    assert np.abs(np.asarray(picture).astype(int) - (30, 120, 200)).mean() < 8
    figure = decode(images["imgs/img_in_image_box_250_240_290_280.jpg"])
    assert figure.size == (40, 40) and np.asarray(figure)[20, 20, 0] > 150


def test_return_markdown_images_off_leaves_images_out():
    boxes, blocks = layout()
    options = AssembleOptions(visualize=False, return_markdown_images=False)
    entry = assemble_page(page(), boxes, blocks, options)
    assert "images" not in entry["markdown"] and entry["markdown"]["text"]


def test_visualize_adds_layout_drawing_and_input_image_downscaled():
    boxes, blocks = layout()
    entry = assemble_page(page(), boxes, blocks, AssembleOptions(visualize=True, max_output_image_size=200))
    assert set(entry) == {"prunedResult", "markdown", "outputImages", "inputImage"}
    assert list(entry["outputImages"]) == ["layout_det_res"]
    drawn, original = decode(entry["outputImages"]["layout_det_res"]), decode(entry["inputImage"])
    assert drawn.format == original.format == "JPEG"
    assert drawn.size == original.size == (200, 150)
    assert not np.array_equal(np.asarray(drawn), np.asarray(original))
    assert max(decode(v).size[0] for v in entry["markdown"]["images"].values()) <= 200
    json.dumps(entry)


def test_without_layout_detection_no_layout_keys():
    blocks = [Block("ocr", [0, 0, W, H], "whole page text")]
    entry = assemble_page(page(), [], blocks, AssembleOptions(visualize=True, use_layout_detection=False))
    assert "layout_det_res" not in entry["prunedResult"]
    assert entry["outputImages"] == {} and entry["inputImage"]
    assert entry["markdown"]["text"] == "whole page text"


def test_spotting_is_visualised_beside_the_page():
    quad = [[10.0, 10.0], [200.0, 10.0], [200.0, 60.0], [10.0, 60.0]]
    blocks = [Block("spotting", [0, 0, W, H], "Hello", extra={"spotting": {"rec_polys": [quad],
                                                                            "rec_texts": ["Hello"]}})]
    options = AssembleOptions(visualize=True, use_layout_detection=False)
    entry = assemble_page(page(), [], blocks, options)
    assert list(entry["outputImages"]) == ["spotting_res_img"]
    shown = np.asarray(decode(entry["outputImages"]["spotting_res_img"])).astype(int)
    assert shown.shape == (H, 2 * W, 3)                        # the page, then the texts on white
    original = np.asarray(decode(entry["inputImage"])).astype(int)
    assert np.abs(shown[30, 100] - original[30, 100]).sum() > 30    # the quad is shaded on the left
    assert np.abs(shown[H - 5, 5] - original[H - 5, 5]).sum() < 30  # the rest of the page is not
    right = shown[:, W:]
    assert (right[5:65, 5:205] < 128).any() and (right[100:, :] > 240).all()   # text in the quad only
    plain = assemble_page(page(), [], [Block("ocr", [0, 0, W, H], "x")], options)
    assert "spotting_res_img" not in plain["outputImages"]


def test_format_block_content_and_spotting():
    boxes, blocks = layout()
    blocks[0] = Block("paragraph_title", [20, 10, 380, 50], "1.1 Scope")
    blocks.append(Block("spotting", [0, 0, 10, 10], "A\n\nB",
                        extra={"spotting": {"rec_polys": [[[np.float32(1), 2], [3, 4], [5, 6], [7, 8]]],
                                            "rec_texts": ["A"]}}))
    entry = assemble_page(page(), boxes, blocks, AssembleOptions(visualize=False, format_block_content=True))
    res = entry["prunedResult"]["parsing_res_list"]
    assert res[0]["block_content"] == "### 1.1 Scope"
    assert res[1]["block_content"] == "First line\n\nsecond line"
    assert res[2]["block_content"].startswith('<div style="text-align: center;"><img src="imgs/')
    assert entry["prunedResult"]["spotting_res"] == {
        "rec_polys": [[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]], "rec_texts": ["A"]}
    assert entry["prunedResult"]["model_settings"]["format_block_content"] is True
    json.dumps(entry)


def test_options_from_request_fill_defaults():
    settings = EngineSettings(visualize=False, max_output_image_size=1500)
    opts = parse_options(LayoutParsingRequest(file="x"), settings).assemble
    assert opts.visualize is False and opts.max_output_image_size == 1500
    assert opts.prettify_markdown and opts.return_markdown_images and not opts.show_formula_number
    assert opts.use_layout_detection and opts.merge_layout_blocks and opts.return_layout_polygon_points
    assert not (opts.use_chart_recognition or opts.use_seal_recognition or opts.use_ocr_for_image_block)
    assert opts.markdown_ignore_labels[0] == "number" and len(opts.markdown_ignore_labels) == 7

    req = LayoutParsingRequest.model_validate({
        "file": "x", "visualize": True, "markdownIgnoreLabels": [], "prettifyMarkdown": False,
        "useChartRecognition": True, "formatBlockContent": True, "layoutShapeMode": "rect",
        "mergeLayoutBlocks": False, "returnMarkdownImages": False})
    opts = parse_options(req, settings).assemble
    assert opts.visualize and opts.markdown_ignore_labels == [] and not opts.prettify_markdown
    assert opts.use_chart_recognition and opts.format_block_content and not opts.merge_layout_blocks
    assert not opts.return_layout_polygon_points and not opts.return_markdown_images


def test_encode_jpeg_fits_longest_side_and_never_upscales():
    img = np.zeros((100, 400, 3), np.uint8)
    assert decode(encode_jpeg_b64(img, 200)).size == (200, 50)
    assert decode(encode_jpeg_b64(img, 1000)).size == (400, 100)
    assert decode(encode_jpeg_b64(img)).size == (400, 100)


def test_draw_layout_marks_boxes_and_polygons():
    boxes, _ = layout()
    blank = np.full((H, W, 3), 255, np.uint8)
    drawn = draw_layout(blank, boxes)
    assert drawn.shape == blank.shape and drawn.dtype == np.uint8
    assert (drawn[80, 200] != 255).any()          # inside the text box: shaded
    assert (drawn[200, 10] == 255).all()          # outside every box: untouched
    tri = LayoutBox(22, "text", 0.9, [0, 0, 100, 100], 1, [[0, 0], [100, 0], [0, 100]])
    only_poly = draw_layout(np.full((100, 100, 3), 255, np.uint8), [tri])
    assert (only_poly[90, 90] == 255).all() and (only_poly[30, 30] != 255).any()


def test_block_order_counts_the_reading_flow_as_paddlex_writes_it():
    """Recounted from the labels, not taken from layout: a page read whole (layout off) is block 1."""
    assert reading_orders(["ocr"], []) == [1]
    assert reading_orders(["text", "number", "image", "table", "text", "figure_title"], ["number"]) == [
        1, None, None, None, 2, None]
