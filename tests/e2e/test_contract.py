"""The real stack's answers against the official PaddleX contract (`devkit.paddlex_contract_check`): a matrix
of inputs and options on both endpoints, each answer with no ERROR and only the WARNs of the deliberate
differences that docs/paddlex-differences.md lists.

One stack for the module, with the synthetic recogniser (recognition quality is not the point here) and, so
that preprocessing can run whole, a stand-in UVDoc model (`devkit.onnx_models`: it mirrors the page).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docx
import httpx
import numpy as np
import pytest

from devkit import paddlex_contract_check as contract
from devkit.documents import b64, encode_image, multipage_tiff, render_page, sample_pdf
from devkit.onnx_models import write_unwarper
from devkit.stack import Stack, running_stack

pytestmark = pytest.mark.slow

MAX_BODY = 8 * 1024 * 1024   # the two-page TIFF, uncompressed, is 4 MB in Base64
PROMPT_LABELS = ["ocr", "formula", "table", "chart", "seal", "spotting"]
DIFFERENCES = Path(__file__).resolve().parents[2] / "docs" / "paddlex-differences.md"
# Every WARN the matrix may give, by its case: each a deliberate difference documented in DIFFERENCES
# under the heading named here.
DELIBERATE = {"body over the limit": ("wire", "errorCode", "413 before the body is read")}
# Keys this server adds where they apply (a PDF's text read from its layer, text recovered), documented
# under their own heading; the checker warns of any key it has never seen an official server write.
EXTENSIONS = ("Extension keys beside PaddleX's",
              {"block_text_source", "block_recovered", "blockSources", "recoveredBlocks"})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    unwarper = write_unwarper(tmp_path_factory.mktemp("uvdoc")).parent
    with running_stack(tmp_path_factory.mktemp("contract"), recogniser="synthetic", workers=1,
                       engine_env={"HPS_DOC_UNWARPING_MODEL_DIR": str(unwarper)},
                       gateway_env={"HPS_MAX_BODY_SIZE": str(MAX_BODY)}) as running:
        yield running


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    pdf, _ = sample_pdf(2)
    frames = [render_page(pdf, i, dpi=72) for i in range(2)]
    turned = np.ascontiguousarray(np.rot90(frames[0], -1))   # a portrait page lying on its side
    return {"pdf": pdf, "png": encode_image(frames[0]), "tiff": multipage_tiff(frames[:1]),
            "tiffs": multipage_tiff(frames), "turned": encode_image(turned)}


def post(stack: Stack, route: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{stack.url}/{route}", json=body, timeout=120)


def checked(response: httpx.Response, request: dict[str, Any], route: str,
            deliberate: tuple[str, str, str] | None = None) -> dict[str, Any]:
    """The answer, after the checker: no ERROR, and a WARN only where a deliberate difference is named."""
    body = response.json()
    findings = contract.run_checks(body, request, response.status_code, route)
    errors = [str(f) for f in findings if f.level == "ERROR"]
    warns = [(f.layer, f.path) for f in findings
             if f.level == "WARN" and f.path.rsplit(".", 1)[-1] not in EXTENSIONS[1]]
    assert not errors, errors
    assert warns == ([deliberate[:2]] if deliberate else []), [str(f) for f in findings]
    return body


def layout_request(file: bytes, file_type: int, **fields: Any) -> dict[str, Any]:
    return {"file": b64(file), "fileType": file_type, **fields}


@pytest.mark.parametrize(("name", "file_type", "fields"), [
    ("pdf", 0, {}),
    ("pdf", 0, {"visualize": True, "restructurePages": True}),
    ("png", 1, {"visualize": True, "layoutShapeMode": "rect", "formatBlockContent": True}),
    ("tiff", 1, {"visualize": False}),
    ("tiffs", 1, {"visualize": False, "returnMarkdownImages": False}),
    ("pdf", 0, {"visualize": False, "outputFormats": ["docx"]}),
])
def test_documents_and_options_answer_as_paddlex(stack: Stack, files: dict[str, bytes], name: str,
                                                 file_type: int, fields: dict[str, Any]) -> None:
    request = layout_request(files[name], file_type, **fields)
    result = checked(post(stack, "layout-parsing", request), request, "layout-parsing")["result"]
    info = result["dataInfo"]
    expected_type = {"pdf": "pdf", "tiffs": "tiff"}.get(name, "image")
    assert info["type"] == expected_type   # a single-frame TIFF is an image, as PaddleX reports it
    if "outputFormats" in fields:
        for i, entry in enumerate(result["layoutParsingResults"]):
            exported = entry["exports"]["docx"]
            assert exported["fileName"] == f"page_{i}.docx"
            document = docx.Document(io.BytesIO(base64.b64decode(exported["content"], validate=True)))
            assert any(p.text for p in document.paragraphs)


@pytest.mark.parametrize("label", PROMPT_LABELS)
def test_each_prompt_label_without_layout_answers_as_paddlex(stack: Stack, files: dict[str, bytes],
                                                             label: str) -> None:
    request = layout_request(files["png"], 1, useLayoutDetection=False, promptLabel=label, visualize=True)
    body = checked(post(stack, "layout-parsing", request), request, "layout-parsing")
    [entry] = body["result"]["layoutParsingResults"]
    [block] = entry["prunedResult"]["parsing_res_list"]
    assert block["block_label"] == label and "layout_det_res" not in entry["prunedResult"]
    assert block["block_order"] == (None if label in ("table", "chart") else 1)
    assert ("spotting_res_img" in entry["outputImages"]) is (label == "spotting")
    assert ("spotting_res" in entry["prunedResult"]) is (label == "spotting")


@pytest.mark.parametrize("unwarp", [False, True])
def test_preprocessing_answers_as_paddlex(stack: Stack, files: dict[str, bytes], unwarp: bool) -> None:
    request = layout_request(files["turned"], 1, useDocOrientationClassify=True, useDocUnwarping=unwarp,
                             visualize=True)
    body = checked(post(stack, "layout-parsing", request), request, "layout-parsing")
    [entry] = body["result"]["layoutParsingResults"]
    pruned = entry["prunedResult"]
    assert pruned["doc_preprocessor_res"] == {
        "model_settings": {"use_doc_orientation_classify": True, "use_doc_unwarping": unwarp}, "angle": 90}
    assert pruned["width"] < pruned["height"]          # read upright: a portrait page again
    assert list(entry["outputImages"]) == ["preprocessed_img", "layout_det_res"]


def pages_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"prunedResult": e["prunedResult"], "markdownImages": e["markdown"].get("images")}
            for e in body["result"]["layoutParsingResults"]]


@pytest.mark.parametrize("concatenate", [False, True])
@pytest.mark.parametrize("source", ["layout", "no layout", "preprocessed"])
def test_restructured_pages_answer_as_paddlex(stack: Stack, files: dict[str, bytes], source: str,
                                              concatenate: bool) -> None:
    fields = {"layout": {}, "no layout": {"useLayoutDetection": False, "promptLabel": "spotting"},
              "preprocessed": {"useDocOrientationClassify": True, "useDocUnwarping": False}}[source]
    file, file_type = (files["pdf"], 0) if source == "layout" else (files["turned"], 1)
    answer = post(stack, "layout-parsing", layout_request(file, file_type, visualize=False, **fields)).json()
    pages = pages_of(answer) * (1 if source == "layout" else 2)
    request = {"pages": pages, "concatenatePages": concatenate, "outputFormats": ["docx"]}
    body = checked(post(stack, "restructure-pages", request), request, "restructure-pages")
    results = body["result"]["layoutParsingResults"]
    assert len(results) == (1 if concatenate else len(pages))
    if concatenate:
        pruned = results[0]["prunedResult"]
        assert ("layout_det_res" in pruned) is (source != "no layout")   # left out, not [null, ...]
        assert ("spotting_res" in pruned) is (source == "no layout")   # the first page's
        assert ("doc_preprocessor_res" in pruned) is (source == "preprocessed")
        assert results[0]["exports"]["docx"]["fileName"] == "document.docx"


def test_a_body_without_content_type_is_read_as_json(stack: Stack, files: dict[str, bytes]) -> None:
    request = layout_request(files["png"], 1, visualize=False)
    raw = httpx.Request("POST", "/", json=request).content
    response = httpx.post(f"{stack.url}/layout-parsing", content=raw, timeout=120)
    assert "content-type" not in response.request.headers
    checked(response, request, "layout-parsing")


def test_deliberate_differences_give_only_their_documented_warning(stack: Stack) -> None:
    request = {"file": "A" * (MAX_BODY + 1), "fileType": 0}
    response = post(stack, "layout-parsing", request)
    assert response.status_code == 413
    checked(response, request, "layout-parsing", DELIBERATE["body over the limit"])


def test_every_deliberate_difference_is_documented() -> None:
    text = DIFFERENCES.read_text()
    for _, _, heading in DELIBERATE.values():
        assert f"## {heading}" in text, heading
    assert f"## {EXTENSIONS[0]}" in text and all(f"`{key}`" in text for key in EXTENSIONS[1])


def test_the_checker_tells_a_broken_answer_from_a_valid_one() -> None:
    """Its own examples: valid answers pass, broken ones fail, so a pass above means something."""
    assert contract.main(["--self-test"]) == 0
