"""Small ONNX models with the interface of a real one, made with onnx (a dev dependency) for tests.

`write_unwarper(dir)` writes `dir/inference.onnx` with the interface of PaddleX's UVDoc export (a page in,
BGR 0..1 as (N, 3, H, W); the page out the same way). No pip package ships UVDoc, so tests stand this in
for it: it mirrors the page left to right and halves its blue channel, which tells a test
that the model ran and that the channels reached it as BGR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INT64_MIN = -(2**63)


def write_unwarper(directory: Path) -> Path:
    """`directory/inference.onnx`: the mirroring stand-in for UVDoc described above."""
    directory.mkdir(parents=True, exist_ok=True)
    constants: dict[str, np.ndarray] = {
        "starts": np.array([-1], np.int64), "ends": np.array([INT64_MIN], np.int64),
        "axes": np.array([3], np.int64), "steps": np.array([-1], np.int64),
        "bgr_gain": np.array([0.5, 1.0, 1.0], np.float32).reshape(1, 3, 1, 1),
    }
    graph = helper.make_graph(
        [helper.make_node("Slice", ["image", "starts", "ends", "axes", "steps"], ["mirrored"]),
         helper.make_node("Mul", ["mirrored", "bgr_gain"], ["output"])],
        "unwarper_stand_in",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        initializer=[numpy_helper.from_array(v, k) for k, v in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = directory / "inference.onnx"
    onnx.save(model, path)
    return path
