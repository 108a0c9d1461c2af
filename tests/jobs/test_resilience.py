"""Jobs survive what kills a gateway: SIGKILLed mid-job, the job completes after the restart from its last
finished page; and two replicas on one Redis serve the same jobs (submit on one, poll, stream and cancel on
the other, and a replica killed mid-job loses nothing)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest

from devkit.documents import sample_pdf
from devkit.replicas import gateway_replica
from devkit.stack import eventually, running_stack
from tests.jobs.conftest import KEY, job_env, synthetic

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {KEY}"}


def submit(url: str, pages: int) -> str:
    data = {"model": "PaddleOCR-VL-1.6", "optionalPayload": json.dumps({"visualize": False})}
    response = httpx.post(f"{url}/api/v2/ocr/jobs", files={"file": ("doc.pdf", sample_pdf(pages)[0])},
                          data=data, headers=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["jobId"])


def status(url: str, job: str) -> dict[str, object]:
    response = httpx.get(f"{url}/api/v2/ocr/jobs/{job}", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def extracted(url: str, job: str) -> int:
    progress = status(url, job)["extractProgress"]
    return int(progress["extractedPages"])   # type: ignore[index]


def test_a_gateway_killed_mid_job_finishes_it_after_its_restart_without_redoing_pages(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_stack(tmp_path / "logs", workers=1, restart_backoff=0.5, **synthetic(0.3, 4),
                       engine_env={"HPS_VLM_MAX_CONCURRENCY": "4"},
                       gateway_env=job_env(data, HPS_JOB_PAGE_WINDOW="2")) as stack:
        job = submit(stack.url, 12)
        assert eventually(lambda: extracted(stack.url, job) >= 3, 120)
        stack.signal("gateway", signal.SIGKILL)
        lines = data / "jobs" / job / "lines"
        finished_before = sorted(int(p.stem) + 1 for p in lines.glob("*.json"))   # page numbers
        stack.wait_ready(60)
        assert eventually(lambda: status(stack.url, job)["state"] == "done", 180), status(stack.url, job)
        assert extracted(stack.url, job) == 12
        log = stack.log_tail(2_000_000)
    assert len(finished_before) >= 3
    for page in range(1, 13):
        runs = log.count(f"[{job}-p{page}] parsed 1 page(s)")
        if page in finished_before:
            assert runs == 1, (page, runs)   # a page finished before the kill was never computed again
        else:
            assert runs >= 1, (page, runs)


def test_two_replicas_on_one_redis_serve_the_same_jobs(tmp_path: Path, redis_url: str) -> None:
    env = job_env(tmp_path / "shared", HPS_JOB_STORE=redis_url, HPS_JOB_PAGE_WINDOW="2")
    with running_stack(tmp_path / "logs", workers=1, **synthetic(0.3, 4),
                       engine_env={"HPS_VLM_MAX_CONCURRENCY": "4"}, gateway_env=env) as stack, \
            gateway_replica(stack.triton_grpc, stack.vlm_url, env, tmp_path / "b.log") as (other, process_b):
        one = submit(stack.url, 3)                                 # submitted on A ...
        assert eventually(lambda: status(other, one)["state"] == "done", 120)   # ... watched on B
        link = status(other, one)["resultUrl"]["jsonUrl"]          # a link B signed ...
        assert link.startswith(other)
        on_a = link.replace(other, stack.url)                      # ... is good on A: one shared secret
        assert len(httpx.get(on_a, timeout=30).text.strip().splitlines()) == 3

        two = submit(stack.url, 20)
        assert eventually(lambda: extracted(other, two) >= 1, 120)
        cancelled = httpx.delete(f"{other}/api/v2/ocr/jobs/{two}", headers=AUTH, timeout=30)
        assert cancelled.json()["data"]["errorMsg"] == "cancelled"
        assert status(stack.url, two)["state"] == "failed"

        three = submit(other, 8)                                   # submitted on B, then B is killed
        assert eventually(lambda: extracted(stack.url, three) >= 1, 120)
        process_b.send_signal(signal.SIGKILL)
        assert eventually(lambda: status(stack.url, three)["state"] == "done", 180)   # A finished it
        assert extracted(stack.url, three) == 8
