"""`docker compose --profile cpu up --wait`, for real: the README's curl, a 3-page PDF, a job, the web
page and a bad input answer; every gateway worker serves again within 5 s of Triton's return after a 90 s
outage; `docker compose stop` lets a request in flight finish and every container exits 0. The tests run in
this order, on one stack."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from devkit.documents import b64, encode_image, render_page, sample_pdf
from tests.gateway.each_worker import each_worker, on_new_connections

from .conftest import GATEWAY, ROOT, TRITON, VLM, Stack, docker

pytestmark = pytest.mark.docker

# What each image may add to the base: the targets (recogniser 700 MB, Triton 1.5 GB, gateway 300 MB) less
# the ~130 MB of the upstream python:3.11-slim (a stand-in base is larger, so the sizes are taken over it).
ADDED_MB = {VLM: 570, TRITON: 1370, GATEWAY: 170}
OUTAGE = 90
BACK_WITHIN = 5.0


def readme_curl() -> str:
    """The README's curl example; the Chinese README shows the same command."""
    readme = (ROOT / "README_en.md").read_text()
    block = re.search(r"### Parse a file \(curl\)\n\n```bash\n(.*?)```", readme, re.S)
    assert block, "the README's curl example is gone"
    command = "\n".join(line for line in block.group(1).splitlines() if not line.startswith("#"))
    assert command in (ROOT / "README.md").read_text()
    return command


def test_the_images_are_slim_non_root_and_healthy(stack: Stack) -> None:
    for service, limit in ADDED_MB.items():
        assert stack.figures[service]["added_mb"] <= limit, (service, stack.figures[service])
        assert stack.inspect(service, "{{.State.Health.Status}}") == "healthy"
        config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", stack.image(service)))
        assert config["User"] not in ("", "0", "root") and config["Healthcheck"]["Test"], (service, config)
    ready = httpx.get(f"{stack.url}/health/ready", timeout=10, trust_env=False)
    assert ready.status_code == 200 and ready.json()["errorMsg"] == "Ready"
    docs = httpx.get(f"{stack.url}/docs", timeout=10, trust_env=False).text
    assert "/static-offline-docs/swagger-ui-bundle.js" in docs and "http" not in docs
    page = httpx.get(f"{stack.url}/", timeout=10, trust_env=False)          # the web page, from the image
    assert page.status_code == 200 and 'src="ui/assets/js/main.js"' in page.text
    katex = httpx.get(f"{stack.url}/ui/assets/vendor/katex/katex.min.js", timeout=10, trust_env=False)
    assert katex.status_code == 200 and 'version:"0.19.1"' in katex.text


def test_the_readme_curl_parses_a_pdf(stack: Stack, tmp_path: Path) -> None:
    pdf, truths = sample_pdf(1)
    (tmp_path / "your.pdf").write_bytes(pdf)
    command = readme_curl().replace("http://127.0.0.1:8080", stack.url)
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Success" and len(lines) > 3, done.stdout


def test_a_three_page_pdf(stack: Stack) -> None:
    pdf, _ = sample_pdf(3)
    answer = httpx.post(f"{stack.url}/layout-parsing", json={"file": b64(pdf), "fileType": 0}, timeout=300,
                        trust_env=False)
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert len(result["layoutParsingResults"]) == 3 and result["dataInfo"]["numPages"] == 3
    assert all(p["markdown"]["text"].strip() for p in result["layoutParsingResults"])


def test_a_job_and_the_web_page(stack: Stack) -> None:
    """The Job API in the image (pypdfium2 and Pillow split the pages; the jobs' volume keeps them) and the
    web page at /: the image's stripped libraries do their work."""
    submitted = httpx.post(f"{stack.url}/api/v2/ocr/jobs", files={"file": ("doc.pdf", sample_pdf(3)[0])},
                           data={"model": "PaddleOCR-VL-1.6"}, timeout=60, trust_env=False)
    assert submitted.status_code == 200, submitted.text
    status_url = f"{stack.url}/api/v2/ocr/jobs/{submitted.json()['data']['jobId']}"
    deadline = time.monotonic() + 300
    while (job := httpx.get(status_url, timeout=30, trust_env=False).json()["data"])["state"] not in (
            "done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["state"] == "done", job
    lines = httpx.get(job["resultUrl"]["jsonUrl"], timeout=60, trust_env=False).text.strip().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["result"]["layoutParsingResults"] for line in lines)
    page = httpx.get(f"{stack.url}/", timeout=30, trust_env=False)
    assert page.status_code == 200 and 'src="ui/assets/' in page.text


def truncated_pdf() -> bytes:
    pdf = sample_pdf(1)[0]
    return f'{{"file": "{b64(pdf[: len(pdf) // 2])}", "fileType": 0}}'.encode()


@pytest.mark.parametrize("body,status,says", [
    (b'{"file": ', 400, "not valid JSON"),                      # refused by the gateway
    (truncated_pdf(), 422, "corrupt or truncated"),             # refused by the engine, in Triton
])
def test_a_bad_input_gets_the_envelope(stack: Stack, body: bytes, status: int, says: str) -> None:
    answer = httpx.post(f"{stack.url}/layout-parsing", content=body, timeout=60, trust_env=False,
                        headers={"Content-Type": "application/json"})
    envelope = answer.json()
    assert answer.status_code == status == envelope["errorCode"], answer.text
    assert envelope["logId"] and says in envelope["errorMsg"]


def test_every_worker_serves_within_5_s_of_tritons_return_after_90_s(stack: Stack) -> None:
    image = encode_image(render_page(sample_pdf(1)[0], dpi=48))
    layout = {"file": b64(image), "fileType": 1, "visualize": False}
    ready, parse = f"{stack.url}/health/ready", f"{stack.url}/layout-parsing"
    restructure_url = f"{stack.url}/restructure-pages"
    parsed = httpx.post(parse, json=layout, timeout=120, trust_env=False).json()
    page = parsed["result"]["layoutParsingResults"][0]
    # Each worker is asked while the others are paused, so with requests Triton answers at once.
    restructure = {"pages": [{"prunedResult": page["prunedResult"]}], "concatenatePages": True}
    launcher = stack.launcher_pid(GATEWAY)
    assert all(s == [200] for s in each_worker(launcher, restructure_url, 1, restructure).values())

    stack.compose("stop", TRITON)
    gone = time.monotonic()
    while time.monotonic() - gone < OUTAGE:
        # No worker says Ready, and each request is refused at once, while Triton is gone.
        assert asyncio.run(on_new_connections(ready, 4)) == [503] * 4
        assert asyncio.run(on_new_connections(parse, 1, layout)) == [503]
        time.sleep(2)

    stack.compose("start", TRITON)
    while not stack.triton_ready():
        time.sleep(0.1)
    back = time.monotonic()
    time.sleep(3)  # the gateway's reconnect delay is 1 s at most; 2 s more for a busy machine
    # 24 requests on new connections, spread over every worker (each asked in turn), sent within 5 s.
    served = each_worker(launcher, restructure_url, 6, restructure)
    sent_by = time.monotonic() - back
    stack.figures["recovered"] = (f"{len(served)} workers served {sum(len(s) for s in served.values())} "
                                  f"requests, sent by {sent_by:.1f} s after Triton's health")
    assert len(served) == 4 and all(s == [200] * 6 for s in served.values()), served
    assert sent_by < BACK_WITHIN
    assert asyncio.run(on_new_connections(parse, 4, layout)) == [200] * 4
    assert all(s == [200] for s in each_worker(launcher, ready, 1).values())


def test_compose_stop_lets_a_request_in_flight_finish_and_every_container_exits_0(stack: Stack) -> None:
    pdf, _ = sample_pdf(3)
    answers: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answers.append(httpx.post(
        f"{stack.url}/layout-parsing", json={"file": b64(pdf), "fileType": 0}, timeout=120, trust_env=False)))
    sender.start()
    deadline = time.monotonic() + 30
    while "gateway_requests_in_flight" not in in_flight(stack):
        assert time.monotonic() < deadline, "the request never got in flight"
        time.sleep(0.05)
    started = time.monotonic()
    stack.compose("stop")
    stopped = time.monotonic() - started
    sender.join(timeout=60)
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    assert stopped < 40  # stop_grace_period: nothing was killed
    for service in (GATEWAY, TRITON, VLM):
        assert stack.inspect(service, "{{.State.ExitCode}}") == "0", service


def in_flight(stack: Stack) -> str:
    """The gateway's in-flight gauge lines that are not zero."""
    text = httpx.get(f"{stack.url}/metrics", timeout=5, trust_env=False).text
    return "\n".join(line for line in text.splitlines()
                     if line.startswith("gateway_requests_in_flight") and not line.endswith(" 0.0"))

