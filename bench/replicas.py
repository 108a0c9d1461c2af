"""Scaling out: pages per second with one Triton + recogniser pair, then with two, behind one gateway.

    python -m bench.replicas [--service-time 2] [--parallel 16] [--clients 6] [--pages 4] [--seconds 40]

Each pair is what one Kubernetes Triton pod and one VLM pod are (devkit.replicas): every Triton lists every
recogniser, the gateway lists every Triton (HPS_TRITON_URL) and balances them. The synthetic recogniser is the
bottleneck on purpose (`parallel / service_time` calls per second each, far below what the CPU layout model
and the rest of the stack manage on two cores): with two pairs the bound doubles, and the figures are how
much of that the balancing turns into answered pages, and how busy it keeps the recognisers. Pages/s is the
least-squares slope of pages answered against time over the window, after a warm-up, as in
bench.orchestration. Every block is recognised (`textSource` `vlm`). Target: two pairs >= 1.8 x one pair.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.measure import cli, machine
from bench.orchestration import Load
from devkit.documents import b64, sample_pdf
from devkit.replicas import gateway_replica, triton_pairs

TARGET = 1.8


async def drive(url: str, body: dict, pages: int, served: Callable[[], int], *, clients: int, warmup: float,
                seconds: float) -> tuple[Load, float]:
    """Closed-loop clients until the window ends; what they were answered, and recogniser calls per second
    in the window (`served`: calls answered so far by all recognisers)."""
    load = Load()
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        end = time.monotonic() + warmup + seconds

        async def client(index: int) -> None:
            await asyncio.sleep(warmup * index / clients / 2)   # spread the starts over the warm-up
            await load.ask_until(http, url, body, pages, end)

        tasks = [asyncio.ensure_future(client(i)) for i in range(clients)]
        await asyncio.sleep(end - seconds - time.monotonic())
        calls = await asyncio.to_thread(served)
        await asyncio.sleep(end - time.monotonic())
        calls = await asyncio.to_thread(served) - calls
        for task in tasks:   # requests still in flight are cancelled, which cancels them upstream too
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return load, calls / seconds


def measure(count: int, args: argparse.Namespace, body: dict, logs: Path) -> tuple[float, float, list[int]]:
    """(pages/s answered in the window, recogniser calls/s in it, calls each recogniser served in all) with
    `count` pairs."""
    recogniser = ["--service-time", str(args.service_time), "--parallel", str(args.parallel)]
    engine = {"HPS_VLM_MAX_CONCURRENCY": str(args.parallel), "HPS_PDF_RENDER_SCALE": str(args.render_scale),
              "HPS_LOG_LEVEL": "WARNING"}
    gateway = {"HPS_MAX_CONCURRENT_REQUESTS": "64", "HPS_LOG_LEVEL": "WARNING", "HPS_JOB_ENABLED": "false"}
    with triton_pairs(count, logs / f"{count}-pairs", recogniser_args=recogniser, engine_env=engine) as pairs:
        tritons, vlms = (",".join(getattr(p, a) for p in pairs) for a in ("triton_grpc", "vlm_url"))
        with gateway_replica(tritons, vlms, gateway, logs / f"gateway-{count}.log") as (url, _):
            started = time.monotonic()
            load, calls = asyncio.run(drive(url, body, args.pages, lambda: sum(p.served() for p in pairs),
                                            clients=args.clients, warmup=args.warmup, seconds=args.seconds))
            served = [p.served() for p in pairs]
    if load.failures:
        raise SystemExit(f"{count} pair(s): failed requests {load.failures}")
    window_start = started + args.warmup
    rate, _ = load.answered_rate(window_start, window_start + args.seconds)
    return rate, calls, served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service-time", type=float, default=2.0, help="seconds per recogniser call")
    parser.add_argument("--parallel", type=int, default=16, help="calls each recogniser serves at once")
    parser.add_argument("--clients", type=int, default=6, help="concurrent requests")
    parser.add_argument("--pages", type=int, default=4, help="pages per request")
    parser.add_argument("--render-scale", type=float, default=0.7, help="HPS_PDF_RENDER_SCALE")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before the window")
    parser.add_argument("--seconds", type=float, default=40.0, help="measured window")
    args = parser.parse_args(argv)
    # Every block recognised (the sample PDF's text layer would otherwise answer most of them).
    body = {"file": b64(sample_pdf(args.pages)[0]), "fileType": 0, "visualize": False, "textSource": "vlm"}
    calls = args.parallel / args.service_time
    print(f"replicas: {machine()}")
    print(f"{args.clients} clients x {args.pages}-page PDFs (render scale {args.render_scale}, visualize "
          f"off); each recogniser {args.parallel} parallel x {args.service_time:g} s = {calls:g} calls/s")
    rates = {}
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as logs:
        for count in (1, 2):
            rate, recognised, served = measure(count, args, body, Path(logs))
            rates[count] = rate
            print(f"{count} pair(s): {rate:.3f} pages/s answered; recognisers busy at {recognised:.2f} "
                  f"calls/s = {recognised / (count * calls):.1%} of their bound; calls per recogniser "
                  f"over the run: {served}")
    ratio = rates[2] / rates[1]
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"two pairs / one pair: {ratio:.2f}x; target >= {TARGET}x: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))
