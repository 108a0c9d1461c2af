"""One page's recognised blocks to its `layoutParsingResults[]` entry: prunedResult, Markdown and images.

Everything returned is plain JSON (ints, floats, str, lists, dicts), ready for `json.dumps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contract.envelope import markdown_json
from contract.models import LayoutParsingRequest
from docengine.images import draw_layout, encode_jpeg_b64
from docengine.markdown import DEFAULT_IGNORE_LABELS, format_block_content, image_path, render_markdown
from docengine.settings import EngineSettings
from docengine.types import Block, LayoutBox

# Layout regions whose crops always go into `markdown.images`, even when a table absorbed them (its HTML
# then points at them with <img src="imgs/...">).
DOC_IMAGE_LABELS = ("image", "figure", "seal")


@dataclass
class AssembleOptions:
    """The request's output switches, with the server defaults filled in."""

    prettify_markdown: bool = True
    show_formula_number: bool = False
    markdown_ignore_labels: list[str] = field(default_factory=lambda: list(DEFAULT_IGNORE_LABELS))
    return_markdown_images: bool = True
    visualize: bool = True
    format_block_content: bool = False
    use_layout_detection: bool = True
    use_chart_recognition: bool = False
    use_seal_recognition: bool = False
    use_ocr_for_image_block: bool = False
    merge_layout_blocks: bool = True
    return_layout_polygon_points: bool = True
    max_output_image_size: int = 2000

    @classmethod
    def from_request(cls, req: LayoutParsingRequest, settings: EngineSettings) -> AssembleOptions:
        def pick(value: bool | None, default: bool) -> bool:
            return default if value is None else bool(value)

        return cls(
            prettify_markdown=req.prettify_markdown,
            show_formula_number=req.show_formula_number,
            markdown_ignore_labels=list(
                DEFAULT_IGNORE_LABELS if req.markdown_ignore_labels is None else req.markdown_ignore_labels),
            return_markdown_images=req.return_markdown_images,
            visualize=pick(req.visualize, settings.visualize),
            format_block_content=pick(req.format_block_content, False),
            use_layout_detection=pick(req.use_layout_detection, True),
            use_chart_recognition=pick(req.use_chart_recognition, False),
            use_seal_recognition=pick(req.use_seal_recognition, False),
            use_ocr_for_image_block=pick(req.use_ocr_for_image_block, False),
            merge_layout_blocks=pick(req.merge_layout_blocks, True),
            return_layout_polygon_points=req.layout_shape_mode != "rect",
            max_output_image_size=settings.max_output_image_size,
        )

    def model_settings(self) -> dict[str, Any]:
        """`prunedResult.model_settings`, in upstream's key order. Preprocessing is never available here."""
        return {
            "use_doc_preprocessor": False,
            "use_layout_detection": self.use_layout_detection,
            "use_chart_recognition": self.use_chart_recognition,
            "use_seal_recognition": self.use_seal_recognition,
            "use_ocr_for_image_block": self.use_ocr_for_image_block,
            "format_block_content": self.format_block_content,
            "merge_layout_blocks": self.merge_layout_blocks,
            "markdown_ignore_labels": list(self.markdown_ignore_labels),
            "return_layout_polygon_points": self.return_layout_polygon_points,
        }


def block_json(index: int, block: Block, content: str) -> dict[str, Any]:
    """One `parsing_res_list` entry; a block outside any group is its own group."""
    out: dict[str, Any] = {
        "block_label": block.label,
        "block_content": content,
        "block_bbox": [int(v) for v in block.bbox],
        "block_id": index,
        "block_order": None if block.order is None else int(block.order),
        "group_id": index if block.group_id is None else int(block.group_id),
    }
    if block.polygon_points is not None:
        out["block_polygon_points"] = [[float(x), float(y)] for x, y in block.polygon_points]
    return out


def _doc_images(page: np.ndarray, boxes: list[LayoutBox]) -> dict[str, np.ndarray]:
    """Crops of every picture-like layout box, by the path a table or image block refers to it with."""
    h, w = page.shape[:2]
    crops: dict[str, np.ndarray] = {}
    for box in boxes:
        if box.label not in DOC_IMAGE_LABELS:
            continue
        x1, y1, x2, y2 = (int(v) for v in box.coordinate)  # truncated and clipped, as the block crops are
        x1, x2 = min(max(x1, 0), w), min(max(x2, 0), w)
        y1, y2 = min(max(y1, 0), h), min(max(y2, 0), h)
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


def assemble_page(page: np.ndarray, boxes: list[LayoutBox], blocks: list[Block],
                  options: AssembleOptions) -> dict[str, Any]:
    """The `layoutParsingResults[]` entry of one page; `outputImages`/`inputImage` only when visualizing."""
    height, width = (int(v) for v in page.shape[:2])

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
    if options.use_layout_detection:
        pruned["layout_det_res"] = {"boxes": [box.to_json() for box in boxes]}
    pruned["parsing_res_list"] = [block_json(i, block, content(block)) for i, block in enumerate(blocks)]
    spotting = _spotting_res(blocks)
    if spotting is not None:
        pruned["spotting_res"] = spotting

    text, images = render_markdown(
        blocks,
        page_width=width,
        prettify=options.prettify_markdown,
        show_formula_number=options.show_formula_number,
        ignore_labels=set(options.markdown_ignore_labels),
        use_ocr_for_image_block=options.use_ocr_for_image_block,
        use_seal_recognition=options.use_seal_recognition,
        use_chart_recognition=options.use_chart_recognition,
    )
    encoded: dict[str, str] | None = None
    if options.return_markdown_images:
        images.update(_doc_images(page, boxes))
        encoded = {path: encode_jpeg_b64(img, options.max_output_image_size) for path, img in images.items()}

    entry: dict[str, Any] = {"prunedResult": pruned, "markdown": markdown_json(text, encoded)}
    if options.visualize:
        size = options.max_output_image_size
        drawn = {"layout_det_res": draw_layout(page, boxes)} if options.use_layout_detection else {}
        entry["outputImages"] = {key: encode_jpeg_b64(img, size) for key, img in drawn.items()}
        entry["inputImage"] = encode_jpeg_b64(page, size)
    return entry
