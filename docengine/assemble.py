"""One page's recognised blocks to its `layoutParsingResults[]` entry: prunedResult, Markdown and images.

Everything returned is plain JSON (ints, floats, str, lists, dicts), ready for `json.dumps`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from contract.envelope import markdown_json
from docengine.docx_export import DocxPage, decode_images, docx_exports
from docengine.images import draw_layout, draw_spotting, encode_jpeg_b64
from docengine.markdown import MarkdownStyle, block_images, format_block_content, image_path, markdown_text
from docengine.options import AssembleOptions
from docengine.recognition.crops import int_box
from docengine.types import Block, LayoutBox

if TYPE_CHECKING:
    from docengine.preprocess import Preprocessed

# Layout regions whose crops always go into `markdown.images`, even when a table absorbed them (its HTML
# then points at them with <img src="imgs/...">).
DOC_IMAGE_LABELS = ("image", "figure", "seal")

# Labels that are not part of the reading flow: their blocks (and those of the markdown_ignore_labels) have
# no `block_order`.
SKIP_ORDER_LABELS = frozenset({
    "figure_title", "vision_footnote", "image", "chart", "table", "header", "header_image", "footer",
    "footer_image", "footnote", "aside_text"})


def reading_orders(labels: Sequence[str], ignore_labels: Collection[str]) -> list[int | None]:
    """`block_order` of each block, as PaddleX numbers it when it writes the JSON: 1, 2, ... down the list,
    skipping the labels outside the reading flow. A page without layout detection is block 1; a concatenated
    document counts on from page to page."""
    orders: list[int | None] = []
    count = 0
    for label in labels:
        if label in SKIP_ORDER_LABELS or label in ignore_labels:
            orders.append(None)
        else:
            count += 1
            orders.append(count)
    return orders


def block_json(index: int, block: Block, content: str, order: int | None) -> dict[str, Any]:
    """One `parsing_res_list` entry; a block outside any group is its own group."""
    out: dict[str, Any] = {
        "block_label": block.label,
        "block_content": content,
        "block_bbox": [int(v) for v in block.bbox],
        "block_id": index,
        "block_order": order,
        "group_id": index if block.group_id is None else int(block.group_id),
    }
    if block.polygon_points is not None:
        out["block_polygon_points"] = [[float(x), float(y)] for x, y in block.polygon_points]
    for key in ("global_block_id", "global_group_id"):   # set by restructuring
        if key in block.extra:
            out[key] = block.extra[key]
    # extensions that PaddleX clients ignore, present only where they apply (`docengine.pagetext`)
    if block.extra.get("text_source") == "pdf":
        out["block_text_source"] = "pdf"
    if block.extra.get("recovered"):
        out["block_recovered"] = True
    return out


def _doc_images(page: np.ndarray, boxes: list[LayoutBox]) -> dict[str, np.ndarray]:
    """Crops of every picture-like layout box, by the path a table or image block refers to it with."""
    h, w = page.shape[:2]
    crops: dict[str, np.ndarray] = {}
    for box in boxes:
        if box.label not in DOC_IMAGE_LABELS:
            continue
        x1, y1, x2, y2 = int_box(box.coordinate, w, h)  # truncated and clipped, as the block crops are
        crop = page[y1:y2, x1:x2]
        if crop.size:
            crops[image_path(box.label, [x1, y1, x2, y2])] = crop
    return crops


def _spotting_res(blocks: list[Block]) -> dict[str, Any] | None:
    """Text spotting output `{rec_polys, rec_texts}`, which travels in the spotting blocks' `extra`."""
    found = [b.extra["spotting"] for b in blocks if b.extra.get("spotting")]
    if not found:
        return None
    return {
        "rec_polys": [[[float(x), float(y)] for x, y in poly] for res in found for poly in res["rec_polys"]],
        "rec_texts": [str(text) for res in found for text in res["rec_texts"]],
    }


@dataclass
class PageImages:
    """What a page's answer needs of its pixels, encoded while the page image is at hand (Base64 JPEG)."""

    crops: dict[str, str] | None = None       # by `imgs/...` path: `markdown.images`, the docx's pictures
    output: dict[str, str] | None = None      # `outputImages`, when visualizing
    input: str | None = None                  # `inputImage`, when visualizing


def encode_page_images(page: np.ndarray, boxes: list[LayoutBox], blocks: list[Block],
                       options: AssembleOptions, preprocessed: Preprocessed | None = None) -> PageImages:
    """The page's images as its answer carries them; after this the page image and crops can go. `page` is
    the page layout read; after preprocessing, `inputImage` is the page as it came (`preprocessed`)."""
    size = options.max_output_image_size
    images = PageImages()
    if options.return_markdown_images or "docx" in options.output_formats:
        crops = {**block_images(blocks), **_doc_images(page, boxes)}
        images.crops = {path: encode_jpeg_b64(img, size) for path, img in crops.items()}
    if options.visualize:
        output: dict[str, str] = {}
        if preprocessed is not None and preprocessed.visual is not None:
            output["preprocessed_img"] = preprocessed.visual
        if options.use_layout_detection:
            output["layout_det_res"] = encode_jpeg_b64(draw_layout(page, boxes), size)
        spotting = _spotting_res(blocks)
        if spotting is not None:
            drawn = draw_spotting(page, spotting["rec_polys"], spotting["rec_texts"])
            output["spotting_res_img"] = encode_jpeg_b64(drawn, size)
        images.output = output
        images.input = (preprocessed.input_image if preprocessed is not None and preprocessed.input_image
                        else encode_jpeg_b64(page, size))
    return images


def page_entry(size: tuple[int, int], boxes: list[LayoutBox], blocks: list[Block], options: AssembleOptions,
               images: PageImages, preprocessed: Preprocessed | None = None,
               index: int = 0) -> dict[str, Any]:
    """The `layoutParsingResults[]` entry of page `index`, of `size` (width, height), from its blocks and
    images; `prunedResult` has PaddleX's keys in PaddleX's order."""
    width, height = size

    def content(block: Block) -> str:
        if not options.format_block_content:
            return block.content
        return format_block_content(block, page_width=width,
                                    use_chart_recognition=options.use_chart_recognition)

    pruned: dict[str, Any] = {
        "page_count": None,
        "width": width,
        "height": height,
        "model_settings": options.model_settings(),
    }
    orders = reading_orders([b.label for b in blocks], options.markdown_ignore_labels)
    pruned["parsing_res_list"] = [block_json(i, block, content(block), order)
                                  for i, (block, order) in enumerate(zip(blocks, orders, strict=True))]
    spotting = _spotting_res(blocks)
    if spotting is not None:
        pruned["spotting_res"] = spotting
    if preprocessed is not None:
        pruned["doc_preprocessor_res"] = preprocessed.to_json()
    if options.use_layout_detection:
        pruned["layout_det_res"] = {"boxes": [box.to_json() for box in boxes]}

    style = MarkdownStyle(width, options.prettify_markdown, options.use_ocr_for_image_block,
                          options.use_seal_recognition, options.use_chart_recognition)
    text = markdown_text(blocks, style=style, show_formula_number=options.show_formula_number,
                         ignore_labels=set(options.markdown_ignore_labels))
    markdown_images = images.crops if options.return_markdown_images else None
    entry: dict[str, Any] = {"prunedResult": pruned, "markdown": markdown_json(text, markdown_images)}
    if options.visualize:
        entry["outputImages"] = images.output or {}
        entry["inputImage"] = images.input
    if "docx" in options.output_formats:
        page = DocxPage(blocks, width, decode_images(images.crops), options.markdown_ignore_labels,
                        options.use_chart_recognition, options.use_seal_recognition,
                        options.use_ocr_for_image_block)
        entry["exports"] = docx_exports([page], f"page_{index}.docx")
    return entry


def assemble_page(page: np.ndarray, boxes: list[LayoutBox], blocks: list[Block],
                  options: AssembleOptions) -> dict[str, Any]:
    """The `layoutParsingResults[]` entry of one page; `outputImages`/`inputImage` only when visualizing."""
    height, width = (int(v) for v in page.shape[:2])
    images = encode_page_images(page, boxes, blocks, options)
    return page_entry((width, height), boxes, blocks, options, images)
