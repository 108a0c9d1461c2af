"""What a large answer costs the gateway: CPU per request for a visualised 20-page PDF.

    python -m bench.large_response [--pages 20] [--requests 5]

A visualised answer carries Base64 images of every page (tens of MB for a long document), so the gateway's
work per request is dominated by what it does with the body it forwards and the body it answers. Requests go
one at a time, against the synthetic recogniser at zero service time; the gateway's CPU (all its processes)
is read before and after each, so the figure is the gateway's own, whatever Triton spends.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import httpx

from bench.measure import bench_stack, cli, machine
from devkit.documents import b64, sample_pdf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5, help="measured requests, after one warm-up")
    args = parser.parse_args(argv)
    print(f"large response: {machine()}")
    body = {"file": b64(sample_pdf(args.pages)[0]), "fileType": 0, "visualize": True}
    with bench_stack(synthetic=(0.0, 64)) as stack, \
            httpx.Client(base_url=stack.url, timeout=600) as http:
        cpu_ms, sizes, walls = [], [], []
        for n in range(args.requests + 1):
            before, started = stack.cpu_seconds("gateway"), time.monotonic()
            response = http.post("/layout-parsing", json=body)
            wall = time.monotonic() - started
            used = stack.cpu_seconds("gateway") - before
            if response.status_code != 200:
                print(f"unexpected answer {response.status_code}: {response.text[:300]}")
                return 1
            if n:   # the first request warms up
                cpu_ms.append(used * 1000)
                sizes.append(len(response.content))
                walls.append(wall)
    print(f"{args.pages}-page visualised PDF, {args.requests} requests: "
          f"answer {statistics.median(sizes) / 1e6:.1f} MB, wall {statistics.median(walls):.2f} s (median)")
    print(f"gateway CPU per request: median {statistics.median(cpu_ms):.0f} ms "
          f"(min {min(cpu_ms):.0f}, max {max(cpu_ms):.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))
