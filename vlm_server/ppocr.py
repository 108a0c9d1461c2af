"""PP-OCRv4 text detection and line recognition on the ONNX files shipped inside `rapidocr-onnxruntime`.

Only the model files and the DB box post-processing come from the wheel: sizing the detector input and
decoding the recogniser output are done here, because RapidOCR's own pipeline upscales short, wide crops
to a 736 px short side (slow) and does not report where each character sits in the line, which is what
restoring dropped spaces needs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import rapidocr_onnxruntime
from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess

MODEL_DIR = Path(rapidocr_onnxruntime.__file__).resolve().parent / "models"
DET_MODEL = MODEL_DIR / "ch_PP-OCRv4_det_infer.onnx"
REC_MODEL = MODEL_DIR / "ch_PP-OCRv4_rec_infer.onnx"

REC_HEIGHT = 48


@dataclass(frozen=True)
class LineText:
    """A recognised line: its text, mean confidence, and the x centre (crop pixels) of each character."""

    text: str
    score: float
    char_x: tuple[float, ...]


def _session(path: Path, threads: int) -> ort.InferenceSession:
    if not path.is_file():
        raise FileNotFoundError(f"PP-OCR model missing from the rapidocr-onnxruntime wheel: {path.name}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.enable_cpu_mem_arena = False  # input shapes vary per crop; an arena only grows
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


class PPOCR:
    """Text detector + recogniser. Thread-safe: ONNX Runtime sessions may be run from several threads."""

    def __init__(self, threads: int = 0) -> None:
        threads = threads or max(1, os.cpu_count() or 1)
        self._det = _session(DET_MODEL, threads)
        self._rec = _session(REC_MODEL, threads)
        chars = self._rec.get_modelmeta().custom_metadata_map["character"].splitlines()
        self._charset = ["", *chars, " "]  # CTC blank first; the space class last, as PaddleOCR trains it
        self._db = DBPostProcess(thresh=0.3, box_thresh=0.5, unclip_ratio=1.6, use_dilation=True)

    def detect(self, bgr: np.ndarray, scale: float = 1.0) -> list[np.ndarray]:
        """Quadrilaterals (4x2 float32, clockwise from top-left) of the text lines in `bgr`.

        The image is resized by `scale` (then to multiples of 32), never to a fixed side length.
        """
        h, w = bgr.shape[:2]
        th, tw = max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32)
        x = cv2.resize(bgr, (tw, th)).astype(np.float32) * (2 / 255) - 1.0
        pred = self._det.run(None, {self._det.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})[0]
        boxes, _ = self._db(pred, (h, w))
        return [_order_quad(b.astype(np.float32)) for b in boxes]

    def recognise(self, crops: list[np.ndarray], height: int = REC_HEIGHT) -> list[LineText]:
        """Recognise single-line BGR crops one by one: on CPU, batching padded lines only costs more."""
        return [self._recognise_one(crop, height) for crop in crops]

    def _recognise_one(self, crop: np.ndarray, height: int) -> LineText:
        h, w = crop.shape[:2]
        width = max(height, math.ceil(height * w / max(h, 1)))
        x = cv2.resize(crop, (width, height)).astype(np.float32) * (2 / 255) - 1.0
        probs = self._rec.run(None, {self._rec.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})[0][0]
        return self._decode(probs, (width / probs.shape[0]) * w / width)

    def _decode(self, probs: np.ndarray, to_crop: float) -> LineText:
        idx = probs.argmax(axis=1)
        keep = (idx != 0) & np.concatenate(([True], idx[1:] != idx[:-1]))
        frames = np.flatnonzero(keep)
        if frames.size == 0:
            return LineText("", 0.0, ())
        text = "".join(self._charset[i] for i in idx[frames])
        score = float(probs[frames, idx[frames]].mean())
        return LineText(text, score, tuple(float((f + 0.5) * to_crop) for f in frames))


def _order_quad(pts: np.ndarray) -> np.ndarray:
    """Order 4 points as top-left, top-right, bottom-right, bottom-left."""
    by_x = pts[np.argsort(pts[:, 0])]
    left, right = by_x[:2], by_x[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], np.float32)


def crop_quad(img: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quadrilateral warped upright; a tall one is turned so that the line runs left to right."""
    w = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[3] - quad[2])))
    h = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    w, h = max(w, 1), max(h, 1)
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    out = cv2.warpPerspective(
        img,
        cv2.getPerspectiveTransform(quad, target),
        (w, h),
        borderMode=cv2.BORDER_REPLICATE,
        flags=cv2.INTER_CUBIC,
    )
    return np.ascontiguousarray(np.rot90(out)) if h >= 1.5 * w else out
