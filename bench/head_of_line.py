"""Head-of-line blocking: a 1-page request's latency when it shares the stack with a 30-page request.

    python -m bench.head_of_line [--repeat 5] [--delays 0,1] [--service-time 0.5] [--parallel 16]

One stack, the synthetic recogniser (`--parallel` calls at once, `--service-time` each; the engine may have as
many calls in flight, the local stack's setting), everything else at its defaults. Each repetition times
the 1-page request alone, then sends the 30-page request and, `delay` seconds later, the 1-page one (delay 0:
both at once; 1 s: the long one is already in layout and recognition). Printed: medians over the
repetitions and the ratio with/alone (and each repetition's ratio: which request's pages reach the layout
queue first is a race, so runs differ); the target is 1.2x or better for requests sent together. A long
request holds at most HPS_VLM_REQUEST_SHARE of the engine's calls in flight, so it runs slower alone here,
where that bound is matched to the recogniser's capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

import httpx

from bench.measure import bench_stack, cli, machine
from devkit.documents import b64, sample_pdf
from devkit.stack import Stack
from docengine.settings import EngineSettings

TARGET = 1.2


async def timed(http: httpx.AsyncClient, stack: Stack, body: dict, delay: float = 0.0) -> float:
    await asyncio.sleep(delay)
    start = time.perf_counter()
    response = await http.post(f"{stack.url}/layout-parsing", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    return time.perf_counter() - start


Runs = dict[float, list[tuple[float, float, float]]]


async def measure(stack: Stack, repeat: int, delays: list[float]) -> Runs:
    """delay -> [(alone, with the long request, the long request's own latency)] per repetition."""
    short = {"file": b64(sample_pdf(1)[0]), "fileType": 0, "visualize": False}
    long = {"file": b64(sample_pdf(30)[0]), "fileType": 0, "visualize": False}
    out: Runs = {d: [] for d in delays}
    async with httpx.AsyncClient(timeout=300) as http:
        await timed(http, stack, short)  # warm-up: models, connections, threads
        await timed(http, stack, {**long, "file": b64(sample_pdf(4)[0])})
        for _ in range(repeat):
            for delay in delays:
                alone = await timed(http, stack, short)
                other, together = await asyncio.gather(timed(http, stack, long),
                                                       timed(http, stack, short, delay))
                out[delay].append((alone, together, other))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions; medians are printed")
    parser.add_argument("--delays", default="0,1", help="seconds between the long and the short request")
    parser.add_argument("--service-time", type=float, default=0.5, help="seconds per recogniser call")
    parser.add_argument("--parallel", type=int, default=16, help="recogniser calls served at once")
    args = parser.parse_args(argv)
    delays = [float(d) for d in args.delays.split(",")]
    print(f"head-of-line: {machine()}")
    share = os.environ.get("HPS_VLM_REQUEST_SHARE", EngineSettings.model_fields["vlm_request_share"].default)
    print(f"synthetic recogniser {args.service_time:g} s x {args.parallel} parallel, "
          f"HPS_VLM_MAX_CONCURRENCY={args.parallel}, HPS_VLM_REQUEST_SHARE={share}, other settings as the "
          f"environment or the local stack set them; median of {args.repeat}")
    triton_env = {"HPS_VLM_MAX_CONCURRENCY": str(args.parallel)}
    with bench_stack(synthetic=(args.service_time, args.parallel), engine_env=triton_env) as stack:
        results = asyncio.run(measure(stack, args.repeat, delays))
    print(f"{'1-page sent':28} {'alone s':>8} {'with 30p s':>10} {'ratio':>6} {'30-page s':>10}")
    met = True
    for delay, runs in results.items():
        alone, together, other = (statistics.median(r[i] for r in runs) for i in range(3))
        ratio = together / alone
        when = "with the 30-page request" if delay == 0 else f"{delay:g} s after the 30-page one"
        print(f"{when:28} {alone:>8.3f} {together:>10.3f} {ratio:>5.2f}x {other:>10.2f}   each run: "
              + " ".join(f"{r[1] / r[0]:.2f}x" for r in runs))
        if delay == 0:
            met = ratio <= TARGET
    if 0 in results:
        print(f"target: sent together, {TARGET}x or better: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))
