"""What the engine needs from a layout model, whichever model the profile runs."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from docengine.types import Detection


class Detector(Protocol):
    """Finds layout regions on pages.

    `detect` takes RGB `uint8` pages (H, W, 3) and returns, per page, raw detections: PP-DocLayout class ids,
    page-pixel boxes, an `order_key` (the model's reading order, or a geometric one) and an optional polygon.
    Scores are not cut at the request's thresholds here; `postprocess` does that, so detectors emit everything
    above a low floor. A detector serves one caller at a time (the pipeline calls it from one worker thread).
    """

    def detect(self, pages: list[np.ndarray]) -> list[list[Detection]]: ...
