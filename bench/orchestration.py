"""Orchestration efficiency: how close gateway -> Triton -> engine come to keeping a recogniser saturated.

    python -m bench.orchestration [--service-time 2] [--parallel 16] [--clients 8] [--pages 4] [--seconds 60]

The synthetic recogniser serves `parallel` calls at once, each taking `service_time` seconds, so nobody gets
more than parallel / service_time blocks per second out of it; divided by the blocks per page (the blocks with
content in the answers: one recogniser call each), that is the bound in pages per second. `--clients` clients
send `--pages`-page PDFs back to back, their starts spread over one request's expected latency, so that they
do not move in lock-step. After a warm-up, two rates are taken over the same window: pages answered per
second (least-squares slope of pages answered against time: answers come in steps of one service time, which
a first-to-last count would over- or undercount) and recogniser calls per second (its /stats counter); each is
given as a fraction of the bound. The engine's bound on calls in flight is `--parallel` unless set: the
least that can saturate the recogniser, so every gap between one call and the next costs throughput.

The defaults make the recogniser the bottleneck on two cores: pages rendered at scale 0.7 keep decoding
cheap, but the CPU layout model still costs 0.1-0.25 s of both cores a page, so the rest of the stack tops
out at 4-10 pages/s (it varies run to run), and the bound (1.33 pages/s with the sample page's 6 blocks)
stays well under that.
`--capacity-seconds` first measures that ceiling with the recogniser at zero service time (recogniser calls
per second / blocks per page), to show the margin.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field

import httpx
import numpy as np

from bench.measure import bench_stack, cli, machine
from devkit.documents import b64, sample_pdf
from devkit.stack import Stack

TIERS = ("gateway", "triton", "vlm")


def blocks_of(answer: dict) -> int:
    """Blocks the recogniser read: every block with content (the synthetic recogniser never answers "")."""
    return sum(1 for page in answer["result"]["layoutParsingResults"]
               for block in page["prunedResult"]["parsing_res_list"] if block["block_content"])


@dataclass
class Load:
    pages: int = 0
    blocks: int = 0
    answers: list[tuple[float, int]] = field(default_factory=list)  # (when, pages) of each success
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def blocks_per_page(self) -> float:
        return self.blocks / self.pages if self.pages else float("nan")

    def answered_rate(self, start: float, end: float) -> tuple[float, int]:
        """Pages per second answered in [start, end] (slope of a least-squares line through the cumulative
        pages); and the answers used."""
        inside = [(t, p) for t, p in self.answers if start <= t <= end]
        if len(inside) < 3:
            return float("nan"), len(inside)
        times = np.array([t for t, _ in inside])
        return float(np.polyfit(times, np.cumsum([p for _, p in inside]), 1)[0]), len(inside)

    async def ask_until(self, http: httpx.AsyncClient, url: str, body: dict, pages: int, end: float) -> None:
        """One closed-loop client: `body` (of `pages` pages) to `url`'s /layout-parsing again and again until
        `end` (time.monotonic); each answer counted, each failure counted and followed by a pause."""
        while time.monotonic() < end:
            response = await http.post(f"{url}/layout-parsing", json=body)
            if response.status_code != 200:
                key = f"HTTP {response.status_code}"
                self.failures[key] = self.failures.get(key, 0) + 1
                await asyncio.sleep(0.5)
                continue
            self.answers.append((time.monotonic(), pages))
            self.pages += pages
            self.blocks += blocks_of(response.json())


def cpu_seconds(stack: Stack) -> dict[str, float]:
    return {t: stack.cpu_seconds(t) for t in TIERS}


async def served(http: httpx.AsyncClient, stack: Stack) -> int:
    return int((await http.get(f"{stack.vlm_url}/stats")).json()["served"])


async def drive(stack: Stack, body: dict, pages: int, *, clients: int, ramp: float, warmup: float,
                seconds: float) -> tuple[Load, dict[str, float]]:
    """Run the clients; return what they saw and, for the window, recogniser calls/s and each tier's cores."""
    load = Load()
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        started = time.monotonic()
        window_start = started + ramp + warmup
        window_end = window_start + seconds

        async def client(index: int) -> None:
            await asyncio.sleep(ramp * index / clients)
            await load.ask_until(http, stack.url, body, pages, window_end)

        tasks = [asyncio.ensure_future(client(i)) for i in range(clients)]
        try:
            await asyncio.sleep(window_start - time.monotonic())
            calls0, cpu0, t0 = await served(http, stack), cpu_seconds(stack), time.monotonic()
            await asyncio.sleep(window_end - time.monotonic())
            calls1, cpu1, t1 = await served(http, stack), cpu_seconds(stack), time.monotonic()
        finally:
            for task in tasks:  # requests still in flight are cancelled, which cancels them upstream too
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    window = {"calls/s": (calls1 - calls0) / (t1 - t0), "start": window_start, "end": window_end}
    window.update({f"{t} cores": (cpu1[t] - cpu0[t]) / (t1 - t0) for t in TIERS})
    return load, window


async def probe(stack: Stack, body: dict) -> dict:
    async with httpx.AsyncClient(timeout=300) as http:
        response = await http.post(f"{stack.url}/layout-parsing", json=body)
        response.raise_for_status()
        return response.json()


def stack_settings(vlm_concurrency: int, scale: float) -> dict[str, dict[str, str]]:
    triton = {"HPS_VLM_MAX_CONCURRENCY": str(vlm_concurrency), "HPS_PDF_RENDER_SCALE": str(scale)}
    return {"engine_env": triton,
            "gateway_env": {"HPS_MAX_CONCURRENT_REQUESTS": "64"}}


def cores(window: dict[str, float]) -> str:
    return ", ".join(f"{t} {window[f'{t} cores']:.2f}" for t in TIERS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service-time", type=float, default=2.0, help="seconds per recogniser call")
    parser.add_argument("--parallel", type=int, default=16, help="calls the recogniser serves at once")
    parser.add_argument("--vlm-concurrency", type=int, default=0,
                        help="HPS_VLM_MAX_CONCURRENCY of the engine; 0: --parallel")
    parser.add_argument("--clients", type=int, default=8, help="concurrent requests")
    parser.add_argument("--pages", type=int, default=4, help="pages per request")
    parser.add_argument("--render-scale", type=float, default=0.7, help="HPS_PDF_RENDER_SCALE")
    parser.add_argument("--ramp", type=float, default=-1,
                        help="seconds over which the clients' starts are spread; -1: one request's latency")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after the clients' ramp")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--capacity-seconds", type=float, default=20.0,
                        help="window of the zero-service-time run first (0: skip it)")
    args = parser.parse_args(argv)
    vlm_concurrency = args.vlm_concurrency or args.parallel
    pdf, _ = sample_pdf(args.pages)
    body = {"file": b64(pdf), "fileType": 0, "visualize": False}
    settings = stack_settings(vlm_concurrency, args.render_scale)
    print(f"orchestration: {machine()}")
    print(f"{args.clients} clients x {args.pages}-page PDFs (sample pages, render scale {args.render_scale}, "
          f"visualize off); HPS_VLM_MAX_CONCURRENCY={vlm_concurrency}, HPS_MAX_CONCURRENT_REQUESTS=64")

    if args.capacity_seconds > 0:
        with bench_stack(synthetic=(0.0, 4 * args.parallel), **settings) as stack:
            bpp = blocks_of(asyncio.run(probe(stack, body))) / args.pages
            load, window = asyncio.run(drive(stack, body, args.pages, clients=args.clients, ramp=0, warmup=5,
                                             seconds=args.capacity_seconds))
            print(f"capacity without a recogniser bottleneck (service time 0): "
                  f"{window['calls/s'] / bpp:.2f} pages/s ({window['calls/s']:.1f} calls/s, "
                  f"{bpp:.2f} blocks/page); cores: {cores(window)}")

    rate = args.parallel / args.service_time
    with bench_stack(synthetic=(args.service_time, args.parallel), **settings) as stack:
        bpp = blocks_of(asyncio.run(probe(stack, body))) / args.pages
        ramp = args.clients * args.pages / (rate / bpp) if args.ramp < 0 else args.ramp
        load, window = asyncio.run(drive(stack, body, args.pages, clients=args.clients, ramp=ramp,
                                         warmup=args.warmup, seconds=args.seconds))
    bpp = load.blocks_per_page
    bound = rate / bpp
    answered, count = load.answered_rate(window["start"], window["end"])
    recognised = window["calls/s"] / bpp
    print(f"recogniser: service time {args.service_time:g} s, {args.parallel} parallel = {rate:.2f} calls/s; "
          f"{bpp:.2f} blocks/page => bound {bound:.3f} pages/s")
    print(f"window {args.seconds:g} s after {ramp:.0f} s ramp + {args.warmup:g} s warm-up; "
          f"cores: {cores(window)}")
    print(f"answered:   {answered:.3f} pages/s = {answered / bound:.1%} of the bound ({count} answers)")
    print(f"recognised: {recognised:.3f} pages/s = {window['calls/s'] / rate:.1%} of the bound "
          f"({window['calls/s']:.2f} calls/s)")
    print(f"target: answered >= 90% of the bound: {'met' if answered / bound >= 0.9 else 'NOT met'}")
    if load.failures:
        print(f"failed requests: {load.failures}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))
