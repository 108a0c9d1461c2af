"""The Job API's parts on their own: submissions checked, signed links, documents split into pages, and a
page's answer turned into its JSONL line."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from pathlib import Path
from typing import Any

import pymupdf
import pytest
from PIL import Image

from devkit.documents import encode_image, multipage_tiff, render_page, sample_pdf
from jobs.documents import IMAGE, PDF, inspect, page_file
from jobs.files import JobFiles
from jobs.links import LinkSigner
from jobs.protocol import JobRequestError, check_submission
from jobs.results import page_line
from jobs.runner import JobRunner
from jobs.settings import JobSettings
from jobs.store import Job

SERVED = "PaddleOCR-VL-1.6"


def test_a_good_submission_keeps_its_options() -> None:
    checked = check_submission(SERVED, '{"visualize": false, "useChartRecognition": true}', "2,4-6", "b1",
                               SERVED)
    assert checked.options == {"visualize": False, "useChartRecognition": True}
    assert (checked.page_ranges, checked.batch_id) == ("2,4-6", "b1")


@pytest.mark.parametrize("model,payload,ranges,fragment", [
    ("PaddleOCR-VL-1.5", {}, None, "is not served here; this deployment serves 'PaddleOCR-VL-1.6'"),
    (SERVED, "{not json", None, "optionalPayload is not valid JSON"),
    (SERVED, [1, 2], None, "must be a JSON object"),
    (SERVED, {"topP": 3}, None, '"loc": "topP"'),
    (SERVED, {"file": "x"}, None, "must not carry 'file'"),
    (SERVED, {}, "3-1", "is not a range of pages from 1 up"),
    (SERVED, {}, "two", "is not a page or a range"),
])
def test_a_bad_submission_is_a_400_that_says_why(model: str, payload: object, ranges: str | None,
                                                  fragment: str) -> None:
    with pytest.raises(JobRequestError) as refused:
        check_submission(model, payload, ranges, None, SERVED)
    assert refused.value.status == 400 and fragment in refused.value.message


def test_a_file_url_must_be_http() -> None:
    with pytest.raises(JobRequestError, match="http"):
        check_submission(SERVED, {}, None, None, SERVED, file_url="file:///etc/passwd")


def test_links_are_valid_for_their_path_until_they_expire() -> None:
    signer = LinkSigner(b"secret")
    link = signer.link("http://host:8080/", "/api/v2/ocr/results/abc/result.jsonl", 2000.9)
    path, query = link.removeprefix("http://host:8080").split("?")
    expires, signature = (part.split("=")[1] for part in query.split("&"))
    assert expires == "2000"
    assert signer.valid(path, expires, signature, now=1999)
    assert not signer.valid(path, expires, signature, now=2001)                     # expired
    assert not signer.valid(path.replace("abc", "abd"), expires, signature, now=1)   # another path
    assert not signer.valid(path, "2999", signature, now=1)                          # a later expiry
    assert not LinkSigner(b"other").valid(path, expires, signature, now=1)           # another secret
    assert not signer.valid(path, None, signature, now=1) and not signer.valid(path, expires, None, now=1)


def test_documents_are_counted_and_split_into_one_page_files() -> None:
    pdf, _ = sample_pdf(3)
    assert inspect(pdf, 10) == type(inspect(pdf, 10))("pdf", 3)
    page, kind = page_file(pdf, "pdf", 2)
    assert kind == PDF
    with pymupdf.open(stream=page, filetype="pdf") as one:
        assert one.page_count == 1 and "Introduction" in one[0].get_text()
    frames = [render_page(pdf, i, dpi=30) for i in range(2)]
    tiff = multipage_tiff(frames)
    assert inspect(tiff, 10).kind == "tiff" and inspect(tiff, 10).pages == 2
    png, kind = page_file(tiff, "tiff", 1)
    assert kind == IMAGE and Image.open(io.BytesIO(png)).size == (frames[1].shape[1], frames[1].shape[0])
    image = encode_image(frames[0])
    assert inspect(image, 10).pages == 1 and page_file(image, "image", 0) == (image, IMAGE)


@pytest.mark.parametrize("data,fragment", [
    (b"", "empty"), (b"plain text", "neither a PDF nor"), (b"%PDF-1.7\n garbage", "corrupt or truncated")])
def test_files_no_page_comes_from_are_refused(data: bytes, fragment: str) -> None:
    with pytest.raises(JobRequestError, match=fragment):
        inspect(data, 10)


def test_too_many_pages_and_encryption_are_refused() -> None:
    pdf, _ = sample_pdf(3)
    with pytest.raises(JobRequestError, match="3 pages, over the limit of 2"):
        inspect(pdf, 2)
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        locked = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="u", owner_pw="o")
    with pytest.raises(JobRequestError, match="encrypted"):
        inspect(locked, 10)


def test_a_pages_images_become_flat_unique_files_and_links() -> None:
    jpeg = base64.b64encode(b"\xff\xd8jpeg").decode()
    result = {"layoutParsingResults": [{
        "prunedResult": {"width": 100},
        "markdown": {"text": 'see <img src="imgs/img_in_image_box_1_2_3_4.jpg" />',
                     "images": {"imgs/img_in_image_box_1_2_3_4.jpg": jpeg}},
        "outputImages": {"layout_det_res": jpeg}, "inputImage": jpeg}],
        "dataInfo": {"numPages": 1, "pages": [{"width": 100, "height": 200}], "type": "pdf"}}
    stored: dict[str, bytes] = {}

    def store(name: str, data: bytes) -> str:
        stored[name] = data
        return f"link:{name}"

    line = page_line(result, page_number=7, pages=9, kind="pdf", store=store)
    page = line["result"]["layoutParsingResults"][0]
    assert page["markdown"] == {"text": 'see <img src="page-7-img_in_image_box_1_2_3_4.jpg" />',
                                "images": {"page-7-img_in_image_box_1_2_3_4.jpg":
                                           "link:page-7-img_in_image_box_1_2_3_4.jpg"}}
    assert page["outputImages"] == {"page-7-layout_det_res.jpg": "link:page-7-layout_det_res.jpg"}
    assert page["inputImage"] == "link:page-7-input.jpg" and page["prunedResult"] == {"width": 100}
    assert set(stored.values()) == {b"\xff\xd8jpeg"} and len(stored) == 3
    assert line["result"]["dataInfo"] == {"type": "pdf", "numPages": 9, "pageNumber": 7,
                                          "pages": [{"width": 100, "height": 200}]}


async def test_a_saved_line_is_counted_even_when_the_cancel_comes_between(tmp_path: Path) -> None:
    """A cancel that arrives while a page's line is being saved still lets the line be counted: the line on
    disk and the job's progress never disagree."""
    counted: list[int] = []
    saving = threading.Event()

    class Store:
        async def page_done(self, job_id: str, index: int) -> int:
            counted.append(index)
            return len(counted)

    class SlowFiles(JobFiles):
        def save_line(self, job_id: str, index: int, line: bytes) -> None:
            saving.set()
            time.sleep(0.3)
            super().save_line(job_id, index, line)

    runner = JobRunner(store=Store(), files=SlowFiles(tmp_path), triton=None, pool=None,  # type: ignore[arg-type]
                       settings=JobSettings(), inference_timeout=10)

    async def ask(model: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        return {"layoutParsingResults": [{"prunedResult": {}, "markdown": {"text": "x"}}],
                "dataInfo": {"width": 10, "height": 10}}

    runner._ask = ask  # type: ignore[method-assign]
    pdf = sample_pdf(1)[0]
    job = Job(id="a" * 32, owner="anonymous", model=SERVED, options={})
    page = asyncio.create_task(runner._page(job, pdf, inspect(pdf, 10), [0], 0, {}))
    await asyncio.to_thread(saving.wait, 10)
    page.cancel()
    with pytest.raises(asyncio.CancelledError):
        await page
    for _ in range(100):
        if counted:
            break
        await asyncio.sleep(0.05)
    assert counted == [0]
    assert (tmp_path / "jobs" / job.id / "lines" / "000000.json").exists()
