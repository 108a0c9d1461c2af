"""Document unwarping: UVDoc, the unwarping model of PaddleX's doc-preprocessor, on onnxruntime.

The model is PaddleX's own ONNX export (`inference.onnx`, Hugging Face PaddlePaddle/UVDoc_onnx):
it takes the whole page, BGR scaled to 0..1 as (1, 3, H, W), and returns the flattened page the same way (it
predicts its grid at 712 x 488 and samples the page through it inside the graph). No pip package ships it,
so the gpu profile downloads it at start and a server has it only when `HPS_DOC_UNWARPING_MODEL_DIR` names it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

MODEL_FILE = "inference.onnx"


class Unwarper:
    """`unwarp(page)`: the RGB page flattened, one page per forward pass."""

    def __init__(self, model_dir: str | Path, *, threads: int = 0) -> None:
        path = Path(model_dir) / MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"HPS_DOC_UNWARPING_MODEL_DIR={model_dir!s} has no {MODEL_FILE} "
                "(the files of the Hugging Face repository PaddlePaddle/UVDoc_onnx)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def unwarp(self, page: np.ndarray) -> np.ndarray:
        bgr = page[:, :, ::-1].astype(np.float32) / 255.0
        out = self._session.run(None, {self._input: bgr.transpose(2, 0, 1)[None]})[0][0]
        rgb = np.clip(out.transpose(1, 2, 0) * 255.0, 0, 255)[:, :, ::-1]
        return np.ascontiguousarray(rgb.astype(np.uint8))
