"""Memory per request stays bounded: a long PDF against a short one, synchronously and as a job.

    python -m bench.long_document [--pages 1000] [--short 100] [--service-time 0.02] [--parallel 16]

One stack, the synthetic recogniser (`--parallel` calls at once, `--service-time` each), the real CPU layout
model. The same text PDF is sent with `--short` pages and with `--pages` pages, each once as a synchronous
`/layout-parsing` request and once as a job whose JSONL is then read. While each runs, every tier's RSS is
sampled twice a second; the figure is its peak above the idle stack. The engine works `HPS_JOB_PAGE_WINDOW`
pages of a job at a time, and a synchronous request's pages are rasterised and recognised as they go, so
that only what the answer itself holds (its text: no images here) may grow with the page count. Target: the
long document's peak within 1.5x the short one's for every tier and mode, but the synchronous gateway's, whose
answer is ~`--pages / --short` times larger and is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import httpx

from bench.jobs import one_page, parse, peak_rss, run_job
from bench.measure import bench_stack, cli, machine
from devkit.documents import b64, sample_pdf
from devkit.soak import TIERS
from devkit.stack import Stack

TARGET = 1.5


def rss(stack: Stack) -> dict[str, int]:
    return {tier: stack.rss(tier) for tier in TIERS}


async def peaks(stack: Stack, idle: dict[str, int], running: asyncio.Task[object]) -> dict[str, float]:
    """Each tier's highest RSS above `idle` while `running` runs, in MiB."""
    top = await peak_rss(stack, running, TIERS)
    return {tier: (max(top[tier], idle[tier]) - idle[tier]) / 2**20 for tier in TIERS}


async def synchronous(http: httpx.AsyncClient, stack: Stack, pdf: bytes) -> int:
    """The answer's size in bytes."""
    response = await parse(http, stack, {"file": b64(pdf), "fileType": 0, "visualize": False})
    return len(response.content)


async def measure(stack: Stack, sizes: list[int]) -> list[tuple[str, int, float, dict[str, float], str]]:
    """(mode, pages, seconds, peak MiB per tier, what else) for each size and mode."""
    rows = []
    async with httpx.AsyncClient(timeout=7200) as http:
        await one_page(http, stack, {"file": b64(sample_pdf(1)[0]), "fileType": 0, "visualize": False})
        for pages in sizes:
            pdf = sample_pdf(pages)[0]
            for mode in ("synchronous", "job"):
                await asyncio.sleep(3)
                idle = await asyncio.to_thread(rss, stack)
                started = time.perf_counter()
                work = (synchronous(http, stack, pdf) if mode == "synchronous"
                        else run_job(http, stack, pdf, pages))
                task: asyncio.Task[object] = asyncio.create_task(work)
                peak = await peaks(stack, idle, task)
                out = await task
                other = (f"answer {out / 2**20:.1f} MB" if isinstance(out, int)
                         else f"first line after {out[0]:.1f} s")   # type: ignore[index]
                rows.append((mode, pages, time.perf_counter() - started, peak, other))
                print(row_text(rows[-1]), flush=True)
    return rows


def row_text(row: tuple[str, int, float, dict[str, float], str]) -> str:
    mode, pages, seconds, peak, other = row
    tiers = "  ".join(f"{tier} +{mib:5.0f} MiB" for tier, mib in peak.items())
    return f"{mode:>11} {pages:5d} pages {seconds:7.1f} s  {tiers}  ({other})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--short", type=int, default=100)
    parser.add_argument("--service-time", type=float, default=0.02)
    parser.add_argument("--parallel", type=int, default=16)
    args = parser.parse_args(argv)
    print(f"long_document: {machine()}")
    print(f"synthetic recogniser: {args.parallel} calls at once, {args.service_time} s each; "
          "peak RSS above idle")
    unhurried = {"HPS_INFERENCE_TIMEOUT": "3600"}   # a 1000-page request takes minutes here
    with bench_stack((args.service_time, args.parallel), gateway_env=unhurried) as stack:
        rows = asyncio.run(measure(stack, [args.short, args.pages]))
    by = {(mode, pages): peak for mode, pages, _, peak, _ in rows}
    floor = 16.0   # MiB: below this a peak is noise (allocator arenas, a page in flight)
    for mode in ("synchronous", "job"):
        for tier in TIERS:
            short, long = by[(mode, args.short)][tier], by[(mode, args.pages)][tier]
            ratio = max(long, floor) / max(short, floor)
            excused = mode == "synchronous" and tier == "gateway"
            verdict = "holds the answer" if excused else ("ok" if ratio <= TARGET else "target missed")
            print(f"{mode:>11} {tier:8s} {args.pages} pages / {args.short}: {ratio:5.2f}x  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))
