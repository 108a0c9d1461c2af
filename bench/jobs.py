"""The Job API against the synchronous API: one long PDF as a job, and as one `/layout-parsing` request.

    python -m bench.jobs [--pages 200] [--service-time 0.2] [--parallel 16] [--probes 5] [--probe-seconds 40]

One stack, the synthetic recogniser (`--parallel` calls at once, `--service-time` each), the real CPU layout
model, the Job API at its defaults. In order:
- a 1-page request alone (median of `--probes`): the unit of latency;
- the PDF as one synchronous request: the baseline total;
- the PDF as a job: the time to its first JSONL line and to its last, and the gateway's RSS throughout;
- the PDF as a job again, with 1-page synchronous requests sent one after another beside it for
  `--probe-seconds` (their median against alone), then cancelled: seconds until the engine has no VLM call
  in flight or queued.
Targets: total ≤ 1.05x the synchronous request, first line ≤ 2x one page alone, 1-page latency during the
job ≤ 1.3x alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx

from bench.measure import bench_stack, cli, machine
from devkit.documents import b64, sample_pdf
from devkit.stack import Stack

JOBS = "/api/v2/ocr/jobs"
TARGETS = {"total": 1.05, "first line": 2.0, "1-page latency": 1.3}


async def parse(http: httpx.AsyncClient, stack: Stack, body: dict[str, object]) -> httpx.Response:
    """A synchronous `/layout-parsing` answer; anything but a 200 stops the benchmark."""
    response = await http.post(f"{stack.url}/layout-parsing", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    return response


async def one_page(http: httpx.AsyncClient, stack: Stack, body: dict[str, object]) -> float:
    """Seconds `parse` takes."""
    started = time.perf_counter()
    await parse(http, stack, body)
    return time.perf_counter() - started


async def submit(http: httpx.AsyncClient, stack: Stack, pdf: bytes) -> str:
    response = await http.post(f"{stack.url}{JOBS}", files={"file": ("doc.pdf", pdf)},
                               data={"model": "PaddleOCR-VL-1.6", "optionalPayload": '{"visualize": false}'})
    if response.status_code != 200:
        raise RuntimeError(f"submit: HTTP {response.status_code}: {response.text[:300]}")
    return str(response.json()["data"]["jobId"])


async def job_status(http: httpx.AsyncClient, stack: Stack, job: str) -> dict[str, object]:
    return dict((await http.get(f"{stack.url}{JOBS}/{job}")).json()["data"])


async def run_job(http: httpx.AsyncClient, stack: Stack, pdf: bytes, pages: int) -> tuple[float, float]:
    """(seconds to the first JSONL line, seconds to the last), from the submit."""
    started = time.perf_counter()
    job = await submit(http, stack, pdf)
    while "resultUrl" not in (data := await job_status(http, stack, job)):
        if data["state"] == "failed":
            raise RuntimeError(f"the job failed: {data.get('errorMsg')}")
        await asyncio.sleep(0.05)
    link = data["resultUrl"]["jsonUrl"]  # type: ignore[index]
    first, lines = 0.0, 0
    async with http.stream("GET", link) as response:
        async for line in response.aiter_lines():
            if line.strip():
                lines += 1
                first = first or time.perf_counter() - started
    if lines != pages:
        raise RuntimeError(f"the JSONL has {lines} lines, not {pages}")
    return first, time.perf_counter() - started


async def peak_rss(stack: Stack, running: asyncio.Task[Any], tiers: Sequence[str]) -> dict[str, int]:
    """Each tier's highest RSS (bytes), sampled twice a second while `running` runs (0 if it never did)."""
    peak = dict.fromkeys(tiers, 0)
    while not running.done():
        now = await asyncio.to_thread(lambda: {tier: stack.rss(tier) for tier in tiers})
        peak = {tier: max(peak[tier], now[tier]) for tier in tiers}
        await asyncio.sleep(0.5)
    return peak


def engine_busy(stack: Stack) -> float:
    """VLM calls the engine has in flight or queued now (its Triton custom metrics)."""
    text = httpx.get(stack.triton_metrics, timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(("hps_engine_vlm_in_flight", "hps_engine_vlm_queued")))


async def probe_then_cancel(http: httpx.AsyncClient, stack: Stack, pdf: bytes, page: dict[str, object],
                            seconds: float) -> tuple[list[float], float]:
    """A job with 1-page requests sent one after another beside it for `seconds` (a pause between, as a
    person would), then cancelled: (their latencies, seconds from the DELETE to an engine with no VLM call
    in flight or queued)."""
    job = await submit(http, stack, pdf)
    await asyncio.sleep(2.0)   # the job is under way
    latencies, until = [], time.monotonic() + seconds
    while time.monotonic() < until:
        latencies.append(await one_page(http, stack, page))
        await asyncio.sleep(1.0)
    started = time.perf_counter()
    await http.delete(f"{stack.url}{JOBS}/{job}")
    while await asyncio.to_thread(engine_busy, stack) > 0:
        if time.perf_counter() - started > 60:
            raise RuntimeError("the engine still works on the cancelled job after 60 s")
        await asyncio.sleep(0.1)
    return latencies, time.perf_counter() - started


async def measure(stack: Stack, pages: int, probes: int, probe_seconds: float) -> dict[str, float]:
    pdf = sample_pdf(pages)[0]
    page = {"file": b64(sample_pdf(1)[0]), "fileType": 0, "visualize": False}
    async with httpx.AsyncClient(timeout=3600) as http:
        await one_page(http, stack, page)   # warm up
        alone = statistics.median([await one_page(http, stack, page) for _ in range(probes)])
        sync = await one_page(http, stack, {"file": b64(pdf), "fileType": 0, "visualize": False})
        job = asyncio.create_task(run_job(http, stack, pdf, pages))
        rss = (await peak_rss(stack, job, ["gateway"]))["gateway"]
        first, total = await job
        during, cancel = await probe_then_cancel(http, stack, pdf, page, probe_seconds)
    return {"alone": alone, "sync": sync, "first": first, "total": total, "during": statistics.median(during),
            "probes": len(during), "rss": rss / 2**20, "cancel": cancel}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--service-time", type=float, default=0.2)
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--probe-seconds", type=float, default=40.0)
    args = parser.parse_args(argv)
    print(f"jobs: {machine()}")
    print(f"synthetic recogniser: {args.parallel} calls at once, {args.service_time} s each")
    with bench_stack((args.service_time, args.parallel)) as stack:
        m = asyncio.run(measure(stack, args.pages, args.probes, args.probe_seconds))
    ratios = {"total": m["total"] / m["sync"], "first line": m["first"] / m["alone"],
              "1-page latency": m["during"] / m["alone"]}
    print(f"1 page alone:           {m['alone']:7.2f} s (median of {args.probes})")
    print(f"{args.pages} pages, synchronous: {m['sync']:7.2f} s")
    print(f"{args.pages} pages as a job:     {m['total']:7.2f} s   {ratios['total']:.3f}x the synchronous "
          f"request (target <= {TARGETS['total']}x)")
    print(f"first JSONL line:       {m['first']:7.2f} s   {ratios['first line']:.2f}x one page alone "
          f"(target <= {TARGETS['first line']}x)")
    print(f"1 page during the job:  {m['during']:7.2f} s   {ratios['1-page latency']:.2f}x alone, median of "
          f"{m['probes']:.0f} (target <= {TARGETS['1-page latency']}x)")
    print(f"gateway RSS in the job: {m['rss']:7.0f} MiB (peak, all workers)")
    print(f"cancel to idle engine:  {m['cancel']:7.2f} s")
    for name, ratio in ratios.items():
        if ratio > TARGETS[name]:
            print(f"target missed: {name} {ratio:.3f}x > {TARGETS[name]}x")
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))
