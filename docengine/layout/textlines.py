"""Where the ink of a page image is text that no layout box covers: PP-OCRv4's text-line detector.

For pages without a text layer (images, scans). The page is first masked with white over every layout box;
only when ink is left (components the size of glyphs) does the detector run, on the smallest rectangle
holding that ink, so a page the layout model covered costs a mask and nothing more. The model is the ONNX
file shipped inside `rapidocr-onnxruntime` (in the engine's extra, so in both profiles' Triton images),
loaded by explicit path when the server starts (`load`); the DB box post-processing is the wheel's own.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from docengine.types import LayoutBox

Box = tuple[float, float, float, float]
MIN_GLYPH_PX = 6        # ink components shorter than this are specks, not glyphs
MAX_SIDE = 1600         # the detector's input is shrunk past this
MIN_SIDE = 960          # and enlarged up to this (within MAX_SIDE): small print is found at that size
MARGIN = 24             # px of white around the uncovered ink, as the detector drops lines on the border
MIN_LINE_SCORE = 0.6    # mean probability of a detected line


def bundled_model_path() -> Path:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("rapidocr-onnxruntime is not installed (the engine extra provides it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "ch_PP-OCRv4_det_infer.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"text detector missing from the rapidocr-onnxruntime package: {path.name}")
    return path


def uncovered_ink(page: np.ndarray, boxes: list[LayoutBox]) -> np.ndarray:
    """Ink (dark on the paper) outside every box, specks and rules removed."""
    gray = cv2.cvtColor(page, cv2.COLOR_RGB2GRAY)
    paper = float(np.percentile(gray, 90))
    ink = (gray < paper - 60).astype(np.uint8)
    for box in boxes:
        x1, y1, x2, y2 = (int(v) for v in box.coordinate)
        ink[max(0, y1):max(0, y2), max(0, x1):max(0, x2)] = 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    w, h = stats[1:, 2], stats[1:, 3]
    glyph = (h >= MIN_GLYPH_PX) & (w <= 40 * h) & (h <= 20 * w) & (h < page.shape[0] / 4)
    keep = np.zeros(count, bool)
    keep[1:] = glyph
    return keep[labels]


class TextLineDetector:
    """Thread-safe (ONNX Runtime sessions are); the model loads on `load` or the first page that needs it."""

    def __init__(self, model_path: str | Path | None = None, threads: int = 0) -> None:
        self._path = model_path
        self._threads = threads
        self._lock = threading.Lock()
        self._session: ort.InferenceSession | None = None

    def uncovered_lines(self, page: np.ndarray, boxes: list[LayoutBox]) -> list[Box]:
        """Text lines (page pixels) in the ink that no box covers."""
        ink = uncovered_ink(page, boxes)
        ys, xs = np.nonzero(ink)
        if not len(xs):
            return []
        height, width = ink.shape
        x1, y1 = max(0, int(xs.min()) - MARGIN), max(0, int(ys.min()) - MARGIN)
        x2, y2 = min(width, int(xs.max()) + MARGIN + 1), min(height, int(ys.max()) + MARGIN + 1)
        region = np.full((y2 - y1, x2 - x1, 3), 255, np.uint8)
        region[ink[y1:y2, x1:x2]] = page[y1:y2, x1:x2][ink[y1:y2, x1:x2]]
        return [(a + x1, b + y1, c + x1, d + y1) for a, b, c, d in self.detect(region)]

    def lines_in(self, page: np.ndarray, box: Box) -> list[Box]:
        """Text lines (page pixels) inside `box` of the page, with white around it as the detector needs."""
        height, width = page.shape[:2]
        x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
        x2, y2 = min(width, int(box[2])), min(height, int(box[3]))
        if x2 <= x1 or y2 <= y1:
            return []
        region = cv2.copyMakeBorder(page[y1:y2, x1:x2], MARGIN, MARGIN, MARGIN, MARGIN, cv2.BORDER_CONSTANT,
                                    value=(255, 255, 255))
        dx, dy = x1 - MARGIN, y1 - MARGIN
        return [(a + dx, b + dy, c + dx, d + dy) for a, b, c, d in self.detect(region)]

    def detect(self, rgb: np.ndarray) -> list[Box]:
        from rapidocr_onnxruntime.ch_ppocr_det.utils import DBPostProcess

        session = self.load()
        h, w = rgb.shape[:2]
        scale = min(MAX_SIDE / max(h, w), max(1.0, MIN_SIDE / min(h, w)))
        th, tw = max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        x = cv2.resize(bgr, (tw, th)).astype(np.float32) * (2 / 255) - 1.0
        pred = session.run(None, {session.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})[0]
        post = DBPostProcess(thresh=0.3, box_thresh=MIN_LINE_SCORE, unclip_ratio=1.6, use_dilation=True)
        quads, _ = post(pred, (h, w))
        return [(float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max()))
                for q in quads]

    def load(self) -> ort.InferenceSession:
        """The session, loaded on the first call (the server calls it at start; tests, when they need it)."""
        with self._lock:
            if self._session is None:
                options = ort.SessionOptions()
                options.intra_op_num_threads = self._threads
                options.log_severity_level = 3
                path = str(self._path or bundled_model_path())
                self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            return self._session
