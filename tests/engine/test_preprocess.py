"""Document preprocessing (PaddleX's doc-preprocessor): the shipped orientation model on real pages turned
each way, the UVDoc interface on a stand-in ONNX model, the options' refusals, and the answer it gives."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from contract.models import LayoutParsingRequest
from devkit.documents import encode_image, render_page, sample_pdf
from devkit.onnx_models import write_unwarper
from docengine.errors import InvalidInputError
from docengine.options import Preprocessing, PreprocessOptions, parse_options
from docengine.pipeline import Engine
from docengine.preprocess import DocPreprocessor
from docengine.preprocess.orientation import OrientationClassifier, turn_upright
from docengine.preprocess.unwarping import Unwarper
from docengine.settings import EngineSettings
from docengine.types import VLMTask

SETTINGS = EngineSettings(_env_file=None, profile="cpu")


@pytest.fixture(scope="module")
def upright() -> np.ndarray:
    return render_page(sample_pdf(1)[0], 0, dpi=72)


@pytest.fixture(scope="module")
def unwarper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("uvdoc")
    write_unwarper(directory)
    return directory


@pytest.mark.parametrize("angle", [0, 90, 180, 270])
def test_a_page_turned_clockwise_is_classified_and_turned_back_exactly(upright: np.ndarray, angle: int):
    turned = np.ascontiguousarray(np.rot90(upright, k=-angle // 90))   # turned clockwise by `angle`
    found = OrientationClassifier().angle(turned)
    assert found == angle
    assert np.array_equal(turn_upright(turned, found), upright)


def test_the_unwarper_gets_the_page_as_bgr_and_its_answer_comes_back_as_rgb(unwarper_dir: Path):
    page = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    out = Unwarper(unwarper_dir).unwarp(page)
    expected = page[:, ::-1].copy()                   # the stand-in mirrors the page and halves blue
    expected[:, :, 2] = (expected[:, :, 2] / 255 * 0.5 * 255).astype(np.uint8)
    assert out.dtype == np.uint8 and np.array_equal(out, expected)


def test_a_directory_without_the_model_stops_the_start_with_what_to_put_there(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="PaddlePaddle/UVDoc_onnx"):
        DocPreprocessor.from_settings(EngineSettings(_env_file=None, doc_unwarping_model_dir=str(tmp_path)))


def request(**fields: Any) -> LayoutParsingRequest:
    return LayoutParsingRequest.model_validate({"file": "x", **fields})


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, None),
    ({"useDocOrientationClassify": False, "useDocUnwarping": False}, None),
    ({"useDocOrientationClassify": True, "useDocUnwarping": False}, PreprocessOptions(True, False)),
    ({"useDocUnwarping": True}, PreprocessOptions(True, True)),          # left out: on, as PaddleX
    ({"useDocOrientationClassify": False, "useDocUnwarping": True}, PreprocessOptions(False, True)),
])
def test_preprocessing_runs_when_either_switch_is_on(fields: dict[str, Any], expected: Any):
    options = parse_options(request(**fields), SETTINGS, preprocessing=Preprocessing(True, True))
    assert options.preprocess == expected
    assert options.assemble.model_settings()["use_doc_preprocessor"] is (expected is not None)


def test_a_missing_model_is_a_422_that_names_the_profile_and_how_to_get_it():
    with pytest.raises(InvalidInputError) as refused:
        parse_options(request(useDocOrientationClassify=True), SETTINGS, preprocessing=Preprocessing(True))
    message = refused.value.message
    assert refused.value.status == 422
    assert "useDocUnwarping is not available on this server (cpu profile)" in message
    assert "HPS_DOC_UNWARPING_MODEL_DIR" in message and "useDocUnwarping: false" in message
    with pytest.raises(InvalidInputError, match="useDocOrientationClassify is not available"):
        parse_options(request(useDocOrientationClassify=True, useDocUnwarping=False), SETTINGS)
    parse_options(request(useDocOrientationClassify=True, useDocUnwarping=False), SETTINGS,
                  preprocessing=Preprocessing(orientation=True))


class Reader:
    async def recognize(self, owner: str, tasks: list[VLMTask], background: bool = False) -> list[str]:
        self.sizes = [t.image.shape[:2] for t in tasks]
        return ["text" for _ in tasks]

    async def aclose(self) -> None:
        pass


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


async def test_a_turned_page_is_read_upright_and_the_answer_says_so(upright: np.ndarray, unwarper_dir: Path):
    turned = np.ascontiguousarray(np.rot90(upright, k=-1))   # a portrait page lying on its side
    req = LayoutParsingRequest.model_validate({
        "file": base64.b64encode(encode_image(turned)).decode(), "fileType": 1, "visualize": True,
        "useLayoutDetection": False, "useDocOrientationClassify": True, "useDocUnwarping": True})
    settings = EngineSettings(_env_file=None, profile="gpu", doc_unwarping_model_dir=str(unwarper_dir),
                              max_output_image_size=4000)
    reader = Reader()
    engine = Engine(settings, detector=object(), vlm=reader)  # type: ignore[arg-type]
    try:
        result = await engine.parse(req, "preprocess-test")
    finally:
        await engine.aclose()
    [page] = result["layoutParsingResults"]
    pruned = page["prunedResult"]
    height, width = upright.shape[:2]
    assert (pruned["width"], pruned["height"]) == (width, height)          # the page as layout read it
    assert reader.sizes == [(height, width)]
    assert result["dataInfo"] == {"width": height, "height": width, "type": "image"}   # as it came
    assert pruned["model_settings"]["use_doc_preprocessor"] is True
    assert pruned["doc_preprocessor_res"] == {
        "model_settings": {"use_doc_orientation_classify": True, "use_doc_unwarping": True}, "angle": 90}
    assert list(page["outputImages"]) == ["preprocessed_img"]
    shown = decode(page["outputImages"]["preprocessed_img"])
    assert shown.shape == (height + 25, height + width + width, 3)   # as it came, turned, flattened
    assert decode(page["inputImage"]).shape == turned.shape             # inputImage: the page as it came
