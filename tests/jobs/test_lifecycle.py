"""A job's life on the real stack: progress that rises and lines that arrive before the job is done, events,
a cancel that stops the work in Triton, clear refusals, links that only work as signed, quotas, metrics, and
results that expire with their files."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pymupdf
import pytest

from devkit.documents import sample_pdf
from devkit.stack import Stack, eventually, running_stack
from tests.jobs import sdk
from tests.jobs.conftest import KEY, job_env, synthetic

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "PaddleOCR-VL-1.6"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobs-data")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Stack]:
    """A slow recogniser (0.3 s a call, 4 at once), so that a job's progress can be watched."""
    with running_stack(tmp_path_factory.mktemp("lifecycle"), workers=2, **synthetic(0.3, 4),
                       engine_env={"HPS_VLM_MAX_CONCURRENCY": "4"},
                       gateway_env=job_env(data_dir, HPS_JOB_KEY_QUOTA="3",
                                           HPS_JOB_MAX_FILE_BYTES="2000000")) as running:
        yield running


def submit(stack: Stack, pdf: bytes, **fields: str) -> httpx.Response:
    data = {"model": MODEL, "optionalPayload": json.dumps({"visualize": False}), **fields}
    return httpx.post(f"{stack.url}/api/v2/ocr/jobs", files={"file": ("doc.pdf", pdf)}, data=data,
                      headers=AUTH, timeout=60)


def job_id(response: httpx.Response) -> str:
    assert response.status_code == 200 and response.json()["code"] == 0, response.text
    return str(response.json()["data"]["jobId"])


def status(stack: Stack, job: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.url}/api/v2/ocr/jobs/{job}", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def served(stack: Stack) -> int:
    return int(httpx.get(f"{stack.vlm_url}/stats", timeout=10).json()["served"])


def test_progress_rises_and_lines_arrive_before_the_job_is_done(stack: Stack) -> None:
    job = job_id(submit(stack, sample_pdf(30)[0]))   # its first line comes long before its end
    link = eventually(lambda: status(stack, job).get("resultUrl", {}).get("jsonUrl"), 30)
    assert link and "Authorization" not in link
    seen_pages, first_line_state = [], None
    with httpx.stream("GET", link, timeout=120) as lines:       # no key: the link is signed
        assert lines.status_code == 200
        for line in lines.iter_lines():
            if first_line_state is None:
                first_line_state = status(stack, job)["state"]
            seen_pages.append(json.loads(line)["result"]["dataInfo"]["pageNumber"])
    assert first_line_state == "running"                          # streamed while the job ran
    assert seen_pages == list(range(1, 31))                       # every page, in order
    final = status(stack, job)
    assert final["state"] == "done" and final["extractProgress"]["extractedPages"] == 30
    assert final["extractProgress"]["startTime"] <= final["extractProgress"]["endTime"]


def test_events_follow_the_job_to_its_end(stack: Stack) -> None:
    job = job_id(submit(stack, sample_pdf(3)[0]))
    events = []
    with httpx.stream("GET", f"{stack.url}/api/v2/ocr/jobs/{job}/events", headers=AUTH, timeout=120) as feed:
        for line in feed.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    extracted = [e["extractProgress"]["extractedPages"] for e in events]
    assert extracted == sorted(extracted) and events[-1]["state"] == "done" and extracted[-1] == 3


def test_a_cancel_stops_the_jobs_work_in_triton(stack: Stack) -> None:
    job = job_id(submit(stack, sample_pdf(30)[0]))
    assert eventually(lambda: status(stack, job)["extractProgress"]["extractedPages"] >= 1, 60)
    cancelled_at = time.monotonic()
    answer = httpx.delete(f"{stack.url}/api/v2/ocr/jobs/{job}", headers=AUTH, timeout=30)
    assert answer.status_code == 200 and answer.json()["data"]["state"] == "failed"
    assert answer.json()["data"]["errorMsg"] == "cancelled"

    def quiet() -> bool:   # no recogniser call for a second: the job's pages stopped
        before = served(stack)
        time.sleep(1.0)
        return served(stack) == before

    assert eventually(quiet, 20)
    assert time.monotonic() - cancelled_at < 10
    assert "request cancelled by its client" in stack.log_tail(200_000)       # the engine dropped the work
    final = status(stack, job)
    assert final["extractProgress"]["extractedPages"] < 30 and final["state"] == "failed"
    with sdk.PaddleOCRClient(token=KEY, base_url=stack.url) as paddle, \
            pytest.raises(sdk.JobFailedError, match="cancelled"):
        paddle.wait_document_parsing_result(job)


def encrypted(pdf: bytes) -> bytes:
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        return doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="u", owner_pw="o")


@pytest.mark.parametrize("fields,pdf,fragment", [
    ({"model": "PP-StructureV3"}, None, "is not served here"),
    ({"pageRanges": "4-2"}, None, "is not a range of pages"),
    ({"pageRanges": "9"}, None, "asks for page 9, but the document has 2 pages"),
    ({"optionalPayload": '{"temperature": -1}'}, None, "temperature"),
    ({}, "encrypted", "encrypted with a password"),
    ({}, "large", "over the limit of 2000000 bytes"),
])
def test_a_bad_submission_gets_a_clear_400(stack: Stack, fields: dict[str, str], pdf: str | None,
                                           fragment: str) -> None:
    document = sample_pdf(2)[0]
    if pdf == "encrypted":
        document = encrypted(document)
    elif pdf == "large":
        document = document + b"\n%" + b"x" * 2_000_000
    response = submit(stack, document, **fields)
    body = response.json()
    assert response.status_code == 400 and body["code"] == 400 and fragment in body["msg"], body


def test_unknown_jobs_are_404_and_the_sdk_says_so(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/api/v2/ocr/jobs/{'0' * 32}", headers=AUTH, timeout=30)
    assert response.status_code == 404 and response.json()["code"] == 404
    with sdk.PaddleOCRClient(token=KEY, base_url=stack.url) as paddle, pytest.raises(Exception, match="404"):
        paddle.get_status("not-a-job")


def test_links_work_only_as_signed(stack: Stack) -> None:
    job = job_id(submit(stack, sample_pdf(1)[0], optionalPayload=json.dumps({"visualize": True})))
    assert eventually(lambda: status(stack, job)["state"] == "done", 60)
    link = status(stack, job)["resultUrl"]["jsonUrl"]
    image = json.loads(httpx.get(link, timeout=30).text)["result"]["layoutParsingResults"][0]["inputImage"]
    assert httpx.get(image, timeout=30).status_code == 200
    path, query = image.split("?")
    tampered = {
        "another file": f"{path.replace('input.jpg', 'layout_det_res.jpg')}?{query}",
        "a later expiry": image.replace("expires=", "expires=9"),
        "no signature": path,
        "out of the store": f"{path.rsplit('/', 1)[0]}/..%2F..%2Fjobs.sqlite?{query}",
    }
    for what, url in tampered.items():
        assert httpx.get(url, timeout=30).status_code in (403, 404), what


def test_a_key_has_a_quota_of_unfinished_jobs(stack: Stack, tmp_path: Path) -> None:
    long = sample_pdf(12)[0]
    jobs = [job_id(submit(stack, long)) for _ in range(3)]
    refused = submit(stack, long)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    (tmp_path / "long.pdf").write_bytes(long)
    with sdk.PaddleOCRClient(token=KEY, base_url=stack.url) as paddle, pytest.raises(sdk.RateLimitError):
        paddle.submit_document_parsing(file_path=str(tmp_path / "long.pdf"))
    for job in jobs:
        httpx.delete(f"{stack.url}/api/v2/ocr/jobs/{job}", headers=AUTH, timeout=30)


def test_metrics_count_jobs_and_pages(stack: Stack) -> None:
    job = job_id(submit(stack, sample_pdf(2)[0]))
    assert eventually(lambda: status(stack, job)["state"] == "done", 60)
    assert stack.metric("gateway_job_pages_done_total") >= 2
    assert stack.metric("gateway_jobs_submitted_total") >= 1
    assert eventually(lambda: stack.metric("gateway_jobs", state="done") >= 1, 40)


def test_results_expire_with_their_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_stack(tmp_path / "logs", workers=1, **synthetic(0.01),
                       gateway_env=job_env(data, HPS_JOB_RETENTION="3")) as short:
        job = job_id(submit(short, sample_pdf(1)[0], optionalPayload=json.dumps({"visualize": True})))
        assert eventually(lambda: status(short, job)["state"] == "done", 60)
        link = status(short, job)["resultUrl"]["jsonUrl"]
        assert httpx.get(link, timeout=30).status_code == 200 and any((data / "jobs" / job).iterdir())

        def gone() -> bool:
            answer = httpx.get(f"{short.url}/api/v2/ocr/jobs/{job}", headers=AUTH, timeout=30)
            return answer.status_code == 404

        assert eventually(gone, 30)
        assert httpx.get(link, timeout=30).status_code in (403, 404)
        assert not (data / "jobs" / job).exists()


def test_a_job_that_finds_the_queue_full_waits_for_its_slot(tmp_path: Path) -> None:
    """One slot and no queue: a client would get a 503, but an accepted job steps back and runs later."""
    env = job_env(tmp_path / "data", HPS_MAX_CONCURRENT_REQUESTS="1", HPS_MAX_QUEUED_REQUESTS="0")
    with running_stack(tmp_path / "logs", workers=1, **synthetic(1.0, 1), gateway_env=env) as busy, \
            ThreadPoolExecutor(1) as pool:
        body = {"file": base64.b64encode(sample_pdf(3)[0]).decode(), "fileType": 0, "visualize": False}
        held = pool.submit(httpx.post, f"{busy.url}/layout-parsing", json=body, headers=AUTH, timeout=120)

        def holding() -> bool:
            text = httpx.get(f"{busy.url}/metrics", timeout=10).text
            return 'gateway_requests_in_flight{pool="inference"} 1.0' in text

        assert eventually(holding, 30)
        job = job_id(submit(busy, sample_pdf(1)[0]))
        assert eventually(lambda: status(busy, job)["state"] != "pending", 120)
        assert held.result().status_code == 200
        assert eventually(lambda: status(busy, job)["state"] == "done", 60), status(busy, job)
