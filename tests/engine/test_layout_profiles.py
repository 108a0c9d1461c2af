"""Layout defaults per pipeline and profile, as PaddleX's pipeline configs set them."""

from __future__ import annotations

from docengine.layout.labels import LABEL_IDS, NUM_LABELS
from docengine.profiles import layout_defaults
from docengine.settings import EngineSettings

LARGE = {"chart", "display_formula", "doc_title", "inline_formula", "paragraph_title"}


def test_paddleocr_vl_v1_uses_the_v2_class_thresholds() -> None:
    params = layout_defaults(EngineSettings(profile="gpu", pipeline_name="PaddleOCR-VL"))
    assert isinstance(params.threshold, dict) and len(params.threshold) == NUM_LABELS
    assert {label: params.threshold[LABEL_IDS[label]] for label in ("text", "doc_title", "seal", "table")} \
        == {"text": 0.4, "doc_title": 0.4, "seal": 0.45, "table": 0.5}


def test_later_pipelines_use_one_threshold_and_the_shared_settings() -> None:
    for name in ("PaddleOCR-VL-1.5", "PaddleOCR-VL-1.6"):
        params = layout_defaults(EngineSettings(profile="gpu", pipeline_name=name))
        assert params.threshold == 0.3 and params.nms and params.unclip_ratio == (1.0, 1.0)
        assert params.shape_mode == "auto"
        assert isinstance(params.merge_mode, dict)
        assert {label for label, c in LABEL_IDS.items() if params.merge_mode[c] == "large"} == LARGE
        assert set(params.merge_mode.values()) == {"large", "union"}


def test_cpu_profile_compensates_picodet_by_configuration() -> None:
    params = layout_defaults(EngineSettings(profile="cpu", pipeline_name="PaddleOCR-VL"))
    assert isinstance(params.threshold, dict) and isinstance(params.unclip_ratio, dict)
    title, text, table = LABEL_IDS["paragraph_title"], LABEL_IDS["text"], LABEL_IDS["table"]
    assert params.threshold[title] < params.threshold[text] == 0.5
    assert params.unclip_ratio[title][0] > params.unclip_ratio[text][0] > 1.0
    assert params.unclip_ratio[text][1] == 1.0 and params.unclip_ratio[table] == (1.0, 1.0)
