"""The real Triton server (the wheel's tritonserver) serving `triton_repo/` in the CPU profile.

The recogniser is the synthetic one, so these tests are about the model adapters: batching, answers sent per
request, per-request errors inside a batch, and cancellation. Layout detection is the real ONNX model.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from devkit.documents import TITLE, encode_image, render_page, sample_pdf
from devkit.servers import serve_in_thread
from devkit.stack import eventually
from localstack.triton import start_triton
from vlm_server.synthetic import create_app

REPO = Path(__file__).resolve().parents[2] / "triton_repo"


@pytest.fixture(scope="module")
def vlm():
    app = create_app(service_time=0.02, parallel=32)
    with serve_in_thread(app) as url:
        yield url, app.state.stats


@pytest.fixture(scope="module")
def triton(vlm, tmp_path_factory):
    url, _ = vlm
    env = {"HPS_PROFILE": "cpu", "HPS_VLM_URL": url, "HPS_LOG_LEVEL": "INFO", "HPS_VISUALIZE": "false"}
    log_path = tmp_path_factory.mktemp("triton") / "triton.log"
    with start_triton(REPO, env_overrides=env, log_path=log_path, ready_timeout=120) as server:
        server.log_path = log_path
        yield server


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def infer(server, body: dict, *, model: str = "layout-parsing", **kwargs) -> dict:
    client = grpcclient.InferenceServerClient(server.url_grpc)
    try:
        tensor = grpcclient.InferInput("input", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[json.dumps(body).encode()]], dtype=object))
        result = await client.infer(model, [tensor], **kwargs)
        envelope = json.loads(result.as_numpy("output")[0, 0])
        # the status beside the body is the one the envelope asks for, so the gateway need not parse it
        status = int(result.as_numpy("status")[0, 0])
        assert status == (200 if envelope["errorCode"] == 0 else envelope["errorCode"])
        return envelope
    finally:
        await client.close()


def batch_sizes(server, model: str = "layout-parsing") -> list[int]:
    stats = httpx.get(f"{server.url_http}/v2/models/{model}/stats").json()
    return [int(b["batch_size"]) for b in stats["model_stats"][0]["batch_stats"]]


async def test_a_pdf_is_parsed_through_triton(triton):
    pdf, _ = sample_pdf(2)
    out = await infer(triton, {"file": b64(pdf), "fileType": 0, "logId": "pdf-1"})
    assert out["errorCode"] == 0, out
    assert out["logId"] == "pdf-1"
    result = out["result"]
    assert result["dataInfo"]["type"] == "pdf" and result["dataInfo"]["numPages"] == 2
    assert len(result["layoutParsingResults"]) == 2
    page = result["layoutParsingResults"][0]
    blocks = page["prunedResult"]["parsing_res_list"]
    # the CPU profile takes text blocks from the PDF itself (textSource auto) and recognises the table
    assert any(TITLE in b["block_content"] and b.get("block_text_source") == "pdf" for b in blocks)
    assert any(b["block_label"] == "table" and "<table" in b["block_content"] for b in blocks)
    assert page["markdown"]["text"]
    assert "outputImages" not in page  # HPS_VISUALIZE=false is the default for requests


async def test_the_triton_request_id_is_the_log_id_unless_the_body_has_one(triton):
    """The gateway forwards the client's bytes untouched and names the request by its logId instead."""
    png = encode_image(render_page(sample_pdf(1)[0], dpi=40))
    named = await infer(triton, {"file": b64(png), "fileType": 1}, request_id="gateway-id-1")
    assert named["errorCode"] == 0 and named["logId"] == "gateway-id-1"
    own = await infer(triton, {"file": b64(png), "fileType": 1, "logId": "client-id"},
                      request_id="gateway-id")
    assert own["logId"] == "client-id"
    refused = await infer(triton, {"fileType": 1}, request_id="gateway-id-2")
    assert (refused["errorCode"], refused["logId"]) == (422, "gateway-id-2")


async def test_an_invalid_request_fails_alone_inside_a_batch(triton):
    png = encode_image(render_page(sample_pdf(1)[0], dpi=50))
    good = {"file": b64(png), "fileType": 1}
    bodies = [good, {"file": "%%% not base64 %%%", "fileType": 1}, good, {"fileType": 1}, good]
    outs = await asyncio.gather(*(infer(triton, b) for b in bodies))
    assert [o["errorCode"] for o in outs] == [0, 422, 0, 422, 0]
    assert "file" in outs[3]["errorMsg"]


async def test_triton_forms_batches_larger_than_one(triton):
    png = encode_image(render_page(sample_pdf(1)[0], dpi=40))
    await asyncio.gather(*(infer(triton, {"file": b64(png), "fileType": 1}) for _ in range(12)))
    await asyncio.sleep(0.5)  # statistics can lag the last response
    assert max(batch_sizes(triton)) > 1


async def test_a_short_request_is_answered_before_a_long_one_sent_with_it(triton):
    long_pdf, _ = sample_pdf(12)
    short_png = encode_image(render_page(sample_pdf(1)[0], dpi=72))
    done: dict[str, float] = {}
    t0 = time.monotonic()

    async def timed(name: str, body: dict) -> None:
        out = await infer(triton, body)
        assert out["errorCode"] == 0, out
        done[name] = time.monotonic() - t0

    await asyncio.gather(timed("long", {"file": b64(long_pdf), "fileType": 0}),
                         timed("short", {"file": b64(short_png), "fileType": 1}))
    # What fair turns promise is the order, not a ratio of times (both stretch on a busy machine).
    assert done["short"] < done["long"], done


async def test_a_cancelled_request_stops_its_work(triton, vlm):
    _, stats = vlm
    pdf, _ = sample_pdf(20)
    with pytest.raises(InferenceServerException, match="Deadline"):
        await infer(triton, {"file": b64(pdf), "fileType": 0, "logId": "cancel-me"}, client_timeout=1.0)
    await asyncio.sleep(1.0)
    served = stats["served"]
    await asyncio.sleep(2.0)
    assert stats["served"] == served, "VLM calls went on after the client gave up"
    assert "cancel" in triton.log_path.read_text().lower()


async def test_the_engines_figures_are_triton_metrics(triton):
    """Layout batches and VLM calls behind a request, on Triton's metrics port."""
    png = encode_image(render_page(sample_pdf(1)[0], dpi=40))
    assert (await infer(triton, {"file": b64(png), "fileType": 1}))["errorCode"] == 0

    def sample(name: str) -> float:
        lines = httpx.get(triton.url_metrics, timeout=5).text.splitlines()
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name + "{"))

    # exported once a second
    assert await asyncio.to_thread(eventually, lambda: sample("hps_engine_vlm_calls_total") > 0, 5)
    assert sample("hps_engine_layout_pages_total") >= sample("hps_engine_layout_batches_total") > 0
    assert sample("hps_engine_vlm_failures_total") == 0
    assert sample("hps_engine_vlm_queued") == 0


async def test_restructure_pages_model_needs_no_engine(triton):
    page = {"prunedResult": {"width": 100, "height": 100, "parsing_res_list": [
        {"block_label": "text", "block_content": "Hello", "block_bbox": [0, 0, 50, 10], "block_id": 0,
         "block_order": 1, "group_id": 0}], "layout_det_res": {"boxes": []}}, "markdownImages": {}}
    out = await infer(triton, {"pages": [page, page], "concatenatePages": True}, model="restructure-pages")
    assert out["errorCode"] == 0, out
    assert len(out["result"]["layoutParsingResults"]) == 1
    bad = await infer(triton, {"pages": []}, model="restructure-pages")
    assert bad["errorCode"] == 422
