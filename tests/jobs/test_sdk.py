"""PaddleOCR's own Job API client (the paddleocr 3.7.0 wheel, unchanged) against the real stack, with its
defaults (model PaddleOCR-VL-1.6, no options) and API keys on: sync, async, its CLI, resources saved, and
the ways of submitting (a file, a URL, page ranges, a batch, the same submission twice)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import httpx
import pytest

from devkit.documents import HEADING, encode_image, render_page, sample_pdf
from devkit.stack import ROOT, Stack, running_stack
from tests.jobs import sdk
from tests.jobs.conftest import KEY, job_env, synthetic

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("jobs-data")
    with running_stack(tmp_path_factory.mktemp("sdk"), workers=2, **synthetic(0.05),
                       gateway_env=job_env(data, HPS_JOB_ALLOW_PRIVATE_URLS="true")) as running:
        yield running


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("documents")
    pdf, _ = sample_pdf(3)
    (folder / "report.pdf").write_bytes(pdf)
    (folder / "page.png").write_bytes(encode_image(render_page(pdf, 0, dpi=60)))
    return {"pdf": folder / "report.pdf", "png": folder / "page.png", "folder": folder}


def client(stack: Stack, token: str = KEY) -> sdk.PaddleOCRClient:
    made = sdk.PaddleOCRClient(token=token, base_url=stack.url, request_timeout=60, poll_timeout=120)
    made._poller._initial_interval = 0.3   # the client's own poller, only quicker than its 3 s first wait
    return made


def test_the_client_parses_a_pdf_with_its_defaults_and_saves_its_resources(stack: Stack,
                                                                           documents: dict[str, Path],
                                                                           tmp_path: Path) -> None:
    with client(stack) as paddle:
        result = paddle.parse_document(file_path=str(documents["pdf"]))
        assert len(result.pages) == 3 and result.data_info["numPages"] == 3
        for number, page in enumerate(result.pages, 1):
            assert HEADING in page.markdown_text   # each page's own text (from its text layer: a PDF)
            assert page.pruned_result["parsing_res_list"]
            assert list(page.output_images) == [f"page-{number}-layout_det_res.jpg"]   # visualised
            assert page.input_image_url.startswith(stack.url)
        saved = paddle.save_document_parsing_result_resources(result, str(tmp_path))
    assert sorted(Path(p).name for p in saved) == [f"page-{n}-layout_det_res.jpg" for n in (1, 2, 3)]
    assert all(Path(p).read_bytes()[:2] == b"\xff\xd8" for p in saved)   # JPEG, fetched without a key


def test_the_async_client_parses_an_image(stack: Stack, documents: dict[str, Path]) -> None:
    async def parse() -> object:
        async with sdk.AsyncPaddleOCRClient(token=KEY, base_url=stack.url, poll_timeout=120) as paddle:
            paddle._poller._initial_interval = 0.3
            return await paddle.parse_document(file_path=str(documents["png"]))

    result = asyncio.run(parse())
    assert len(result.pages) == 1 and result.data_info["type"] == "image"   # type: ignore[attr-defined]


def test_the_cli_parses_and_saves_resources(stack: Stack, documents: dict[str, Path], tmp_path: Path) -> None:
    """`paddleocr api --model_type doc_parsing --file_path ... --save_resources DIR`."""
    env = {**os.environ, "PADDLEOCR_ACCESS_TOKEN": KEY, "PADDLEOCR_BASE_URL": stack.url,
           "PYTHONPATH": str(ROOT)}
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.jobs.sdk", "api", "--model_type", "doc_parsing", "--file_path",
         str(documents["pdf"]), "--page_ranges", "2-3", "--save_resources", str(tmp_path),
         "--output", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "Resources saved to" in done.stderr and out.is_file()
    assert sorted(p.name for p in tmp_path.glob("page-*.jpg")) == ["page-2-layout_det_res.jpg",
                                                                   "page-3-layout_det_res.jpg"]


def test_a_wrong_token_is_an_auth_error(stack: Stack, documents: dict[str, Path]) -> None:
    with client(stack, token="not-the-key") as paddle, pytest.raises(sdk.AuthError):
        paddle.submit_document_parsing(file_path=str(documents["pdf"]))


@pytest.fixture(scope="module")
def file_server(documents: dict[str, Path]) -> Iterator[str]:
    """The documents over plain HTTP on loopback (the stack allows private URLs for this test)."""
    folder = documents["folder"]

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_file_by_url_with_page_ranges(stack: Stack, file_server: str) -> None:
    with client(stack) as paddle:
        result = paddle.parse_document(file_url=f"{file_server}/report.pdf", page_ranges="1,3")
    assert [p.pruned_result["width"] for p in result.pages] == [1190, 1190]
    assert result.data_info["numPages"] == 2 and result.data_info["pageNumber"] == 3


def test_a_url_that_cannot_be_fetched_fails_the_job_with_the_reason(stack: Stack, file_server: str) -> None:
    with client(stack) as paddle, pytest.raises(sdk.JobFailedError, match="HTTP 404"):
        paddle.parse_document(file_url=f"{file_server}/missing.pdf")


def test_a_batch_lists_its_jobs(stack: Stack, documents: dict[str, Path]) -> None:
    with client(stack) as paddle:
        jobs = [paddle.submit_document_parsing(file_path=str(documents[kind]), batch_id="nightly-7")
                for kind in ("pdf", "png")]
        for job in jobs:
            paddle.wait_document_parsing_result(job)
        batch = paddle.get_batch_status("nightly-7")
    assert [j.job_id for j in batch.jobs] == [j.job_id for j in jobs]
    assert [j.state for j in batch.jobs] == ["done", "done"]
    assert [j.progress.total_pages for j in batch.jobs] == [3, 1]   # type: ignore[union-attr]


def test_the_same_submission_with_the_same_idempotency_key_is_the_same_job(stack: Stack,
                                                                          documents: dict[str, Path]) -> None:
    def submit(key: str, path: Path) -> str:
        with open(path, "rb") as file:
            response = httpx.post(f"{stack.url}/api/v2/ocr/jobs", files={"file": file},
                                  data={"model": "PaddleOCR-VL-1.6", "optionalPayload": "{}"},
                                  headers={"Authorization": f"Bearer {KEY}", "Idempotency-Key": key},
                                  timeout=60)
        assert response.status_code == 200, response.text
        return str(response.json()["data"]["jobId"])

    first = submit("retry-42", documents["pdf"])
    assert submit("retry-42", documents["pdf"]) == first
    assert submit("retry-42", documents["png"]) != first     # another file: another job
    assert submit("retry-43", documents["pdf"]) != first
