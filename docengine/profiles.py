"""Which layout model each profile runs, and the post-processing defaults each pipeline/profile starts from.

Configuration only: the values that make a model behave as the pipeline expects live here, not in code paths.
"""

from __future__ import annotations

from pathlib import Path

from docengine.layout.base import Detector
from docengine.layout.labels import LABEL_IDS, NUM_LABELS
from docengine.settings import EngineSettings
from docengine.types import LayoutParams


def _ids(*labels: str) -> list[int]:
    return [LABEL_IDS[label] for label in labels]


# PaddleX `PaddleOCR-VL*.yaml`: `large` merge for these classes, `union` for the rest, in every pipeline.
MERGE_MODES: dict[int, str] = {
    c: "large" if c in _ids("chart", "display_formula", "doc_title", "inline_formula", "paragraph_title")
    else "union"
    for c in range(NUM_LABELS)
}

# PaddleOCR-VL (v1) runs PP-DocLayoutV2 with per-class thresholds; 1.5 and 1.6 run V3 at 0.3.
V2_THRESHOLDS: dict[int, float] = {
    c: 0.4 if c in _ids("display_formula", "doc_title", "inline_formula", "paragraph_title", "text",
                        "vertical_text")
    else 0.45 if c == LABEL_IDS["seal"] else 0.5
    for c in range(NUM_LABELS)
}
V3_THRESHOLD = 0.3

# CPU profile, PP-PicoDet CDLA. Measured on the test document's first page rendered at scale 2.0 and on
# wider single- and two-column pages: its boxes fall a few pixels short of line ends (more on wide blocks,
# as the box regression saturates), and titles score near 0.5 with boxes that miss their ends. So: titles
# are kept from 0.4, and boxes are widened around their centre (titles 1.3x, text-like blocks 1.06x, which
# still leaves a gutter between two columns); heights are left alone.
PICODET_THRESHOLDS: dict[int, float] = {
    c: 0.4 if c == LABEL_IDS["paragraph_title"] else 0.5 for c in range(NUM_LABELS)
}
PICODET_UNCLIP: dict[int, float | tuple[float, float]] = {
    c: (1.3, 1.0) if c == LABEL_IDS["paragraph_title"]
    else (1.06, 1.0) if c in _ids("text", "figure_title", "reference_content", "header", "footer")
    else (1.0, 1.0)
    for c in range(NUM_LABELS)
}


def layout_defaults(settings: EngineSettings) -> LayoutParams:
    """Post-processing defaults before request overrides, for the configured profile and pipeline."""
    if settings.profile == "cpu":
        return LayoutParams(threshold=dict(PICODET_THRESHOLDS), nms=True, unclip_ratio=dict(PICODET_UNCLIP),
                            merge_mode=dict(MERGE_MODES), shape_mode="auto")
    threshold: float | dict[int, float] = (
        dict(V2_THRESHOLDS) if settings.pipeline_name == "PaddleOCR-VL" else V3_THRESHOLD
    )
    return LayoutParams(threshold=threshold, nms=True, unclip_ratio=(1.0, 1.0), merge_mode=dict(MERGE_MODES),
                        shape_mode="auto")


def build_detector(settings: EngineSettings) -> Detector:
    """The layout model of the profile: PP-DocLayout from `layout_model_dir` (gpu) or PP-PicoDet (cpu)."""
    if settings.profile == "cpu":
        from docengine.layout.picodet import PicoDetLayout

        return PicoDetLayout()
    model_dir = Path(settings.layout_model_dir) if settings.layout_model_dir else None
    if model_dir is None or not (model_dir / "config.json").is_file():
        raise FileNotFoundError(
            "the gpu profile needs HPS_LAYOUT_MODEL_DIR, a PP-DocLayoutV3 (or V2, for PaddleOCR-VL) "
            "safetensors directory with config.json and model.safetensors; "
            f"got {settings.layout_model_dir!r}")
    from docengine.layout.doclayout import DocLayout

    return DocLayout(model_dir, device=settings.layout_device, batch_size=settings.layout_batch_size)
