"""Pydantic models of the PaddleOCR-VL serving API (PaddleX 3.7 schema), shared by the gateway and the engine.

Field names are camelCase on the wire and snake_case in Python. Unknown fields are kept (`extra="allow"`) so
that newer clients keep working through an older server. Errors are the `{logId, errorCode, errorMsg}`
envelope.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from contract.page_ranges import parse_page_ranges

MergeMode = Literal["large", "small", "union"]
ShapeMode = Literal["rect", "quad", "poly", "auto"]
PromptLabel = Literal["ocr", "formula", "table", "chart", "seal", "spotting"]
UnclipRatio = float | tuple[float, float]
TextSource = Literal["vlm", "auto", "pdf"]


class _WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class LayoutParsingRequest(_WireModel):
    """Body of `POST /layout-parsing`."""

    file: str = Field(description="http(s) URL of the file, or its bytes in Base64 (no `data:` prefix).")
    file_type: Literal[0, 1] | None = Field(
        None,
        description="0 = PDF, 1 = image (PNG, JPEG, BMP, WebP, TIFF). Null: inferred from the URL "
        "extension or from the file's leading bytes.",
    )
    use_doc_orientation_classify: bool | None = Field(
        None,
        description="Turn each page upright first (PP-LCNet_x1_0_doc_ori: 0/90/180/270 degrees). Either "
        "preprocessing switch true runs preprocessing, and then one left out counts as true. The angle is "
        "`prunedResult.doc_preprocessor_res.angle`.",
    )
    use_doc_unwarping: bool | None = Field(
        None,
        description="Flatten each page first (UVDoc). A server without the UVDoc model (the CPU profile "
        "ships none) refuses true with a 422 that says how to add it.",
    )
    use_layout_detection: bool | None = Field(
        None,
        description="Run layout detection (default true). "
        "Off: the whole page is one block recognised with `promptLabel`.",
    )
    use_chart_recognition: bool | None = Field(
        None, description="Send chart blocks to the VLM (default false)."
    )
    use_seal_recognition: bool | None = Field(
        None, description="Send seal blocks to the VLM (default false)."
    )
    use_ocr_for_image_block: bool | None = Field(None, description="Also OCR image blocks (default false).")
    layout_threshold: float | dict[str, float] | None = Field(
        None, description="Score threshold in [0, 1], or a map from class id (as a string) to threshold."
    )
    layout_nms: bool | None = Field(None, description="Non-maximum suppression of layout boxes.")
    layout_unclip_ratio: UnclipRatio | dict[str, UnclipRatio] | None = Field(
        None, description="Box growth factor (> 0), a (width, height) pair, or a map from class id to either."
    )
    layout_merge_bboxes_mode: MergeMode | dict[str, MergeMode] | None = Field(
        None,
        description="Containment merge: `large`, `small`, `union`, or a map from class id to one of them.",
    )
    layout_shape_mode: ShapeMode = Field("auto", description="Shape of layout regions.")
    prompt_label: PromptLabel | None = Field(None, description="Prompt when layout detection is off.")
    format_block_content: bool | None = Field(None, description="Markdown-format `block_content`.")
    repetition_penalty: float | None = Field(None, gt=0, description="VLM repetition penalty.")
    temperature: float | None = Field(None, ge=0, description="VLM sampling temperature (default 0).")
    top_p: float | None = Field(None, gt=0, le=1, description="VLM nucleus sampling.")
    min_pixels: int | None = Field(None, gt=0, description="Smallest image area given to the VLM per block.")
    max_pixels: int | None = Field(None, gt=0, description="Largest image area given to the VLM per block.")
    max_new_tokens: int | None = Field(
        None, gt=0, description="Most tokens the VLM writes per block (default 4096)."
    )
    merge_layout_blocks: bool | None = Field(
        None, description="Merge adjacent text blocks before recognition."
    )
    markdown_ignore_labels: list[str] | None = Field(
        None, description="Block labels left out of the Markdown."
    )
    vlm_extra_args: dict[str, Any] | None = Field(
        None, description="Extra VLM arguments, e.g. `ocr_min_pixels`, `table_max_pixels`."
    )
    prettify_markdown: bool = Field(True, description="Centre images and titles, style tables.")
    show_formula_number: bool = Field(False, description="Attach formula numbers with `\\tag*{}`.")
    return_markdown_images: bool = Field(True, description="Return the Markdown's images as Base64 JPEG.")
    restructure_pages: bool = Field(False, description="Merge tables across pages and relevel titles.")
    merge_tables: bool = Field(True, description="With `restructurePages`: merge tables split over pages.")
    relevel_titles: bool = Field(True, description="With `restructurePages`: relevel paragraph titles.")
    visualize: bool | None = Field(None, description="Return `outputImages` and `inputImage` (default true).")
    output_formats: list[Literal["docx"]] | None = Field(
        None, description='Extra exports of each page: `["docx"]` adds `exports.docx` (a Word document).')
    page_ranges: str | None = Field(
        None, description='Extension: the pages to parse, e.g. "2,4-6", counted from 1; all when left out.')
    log_id: str | None = Field(None, description="Request id echoed in the response and the logs.")
    text_source: TextSource | None = Field(
        None,
        description="Extension (PaddleX clients leave it out). Where the text of text blocks (paragraphs, "
        "titles, captions, headers, ...) comes from: `vlm` recognises every block; `auto` takes it from "
        "a PDF's own text layer where that can be trusted (visible, mapped to Unicode, upright, covering "
        "the block's ink) and recognises the rest; `pdf` takes it from the layer wherever the block has "
        "text there. Tables, formulas, charts, seals and images are always recognised. Blocks whose text "
        "came from the PDF carry `block_text_source: \"pdf\"`, and `dataInfo.blockSources` counts them. "
        "Default: the server's setting (`auto` on the CPU profile, `vlm` on the GPU profile).",
    )
    recover_text: bool | None = Field(
        None,
        description="Extension (PaddleX clients leave it out). Give a `text` block to page text that no "
        "layout box covers (found from a PDF's text layer, or by a text-line detector on images), and "
        "widen text boxes that cut a word. Recovered blocks carry `block_recovered: true`, and "
        "`dataInfo.recoveredBlocks` counts them. Default true (the server's setting).",
    )

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"file": "<Base64 of a PDF>", "fileType": 0, "visualize": False}]}
    )

    @model_validator(mode="after")
    def _check_ranges(self) -> LayoutParsingRequest:
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise ValueError("minPixels must not be greater than maxPixels")
        thresholds = self.layout_threshold
        values = thresholds.values() if isinstance(thresholds, dict) else [thresholds]
        if any(v is not None and not 0 <= v <= 1 for v in values):
            raise ValueError("layoutThreshold values must lie in [0, 1]")
        ratios = self.layout_unclip_ratio
        for ratio in ratios.values() if isinstance(ratios, dict) else [ratios]:
            parts = ratio if isinstance(ratio, tuple) else [ratio]
            if any(p is not None and p <= 0 for p in parts):
                raise ValueError("layoutUnclipRatio values must be greater than 0")
        for mapping in (self.layout_threshold, self.layout_unclip_ratio, self.layout_merge_bboxes_mode):
            if isinstance(mapping, dict) and not all(k.lstrip("-").isdigit() for k in mapping):
                raise ValueError('per-class layout maps are keyed by class id, e.g. {"22": 0.5}')
        return self

    @field_validator("page_ranges")
    @classmethod
    def _page_ranges(cls, value: str | None) -> str | None:
        if value is not None:
            parse_page_ranges(value)   # its message names what is wrong
        return value


class PageInput(_WireModel):
    pruned_result: dict[str, Any] = Field(description="`prunedResult` of a page from `/layout-parsing`.")
    markdown_images: dict[str, str] | None = Field(None, description="That page's `markdown.images`.")


class RestructurePagesRequest(_WireModel):
    """Body of `POST /restructure-pages`."""

    pages: list[PageInput] = Field(min_length=1, description="Pages in document order.")
    merge_tables: bool = Field(True, description="Merge tables split over consecutive pages.")
    relevel_titles: bool = Field(True, description="Relevel paragraph titles over the whole document.")
    concatenate_pages: bool = Field(False, description="Return one result for the whole document.")
    prettify_markdown: bool = Field(True)
    show_formula_number: bool = Field(False)
    return_markdown_images: bool = Field(True)
    output_formats: list[Literal["docx"]] | None = Field(
        None, description='`["docx"]` adds `exports.docx` to each result (one for the whole document when '
        "concatenating).")
    log_id: str | None = Field(None)


# --- responses --------------------------------------------------------------------------------------------


class MarkdownData(_WireModel):
    text: str
    images: dict[str, str] | None = None


class LayoutParsingPageResult(_WireModel):
    pruned_result: dict[str, Any]
    markdown: MarkdownData
    output_images: dict[str, str] | None = None
    input_image: str | None = None
    exports: dict[str, Any] | None = None


class LayoutParsingResult(_WireModel):
    layout_parsing_results: list[LayoutParsingPageResult]
    data_info: dict[str, Any]


class RestructurePagesResult(_WireModel):
    layout_parsing_results: list[LayoutParsingPageResult]


class ErrorEnvelope(BaseModel):
    """Every failure: `errorCode` equals the HTTP status."""

    logId: str
    errorCode: int
    errorMsg: str


class LayoutParsingEnvelope(ErrorEnvelope):
    result: LayoutParsingResult | None = None


class RestructurePagesEnvelope(ErrorEnvelope):
    result: RestructurePagesResult | None = None
