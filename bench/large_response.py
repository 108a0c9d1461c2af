"""What a large answer costs: answer size and gateway/Triton CPU per request for a visualised 30-page PDF,
its images as Base64 (the default) and as URLs (`HPS_RETURN_IMG_URLS`).

    python -m bench.large_response [--pages 30] [--requests 5] [--modes base64,urls]

A visualised answer carries images of every page (tens of MB of Base64 for a long document), so the tiers'
work per request is dominated by what they do with it. Each mode gets a stack of its own; requests go one at
a time, against the synthetic recogniser at zero service time; the CPU of the gateway's processes and of
Triton's is read before and after each, so each figure is that tier's own. With URLs, the answer's images
are fetched afterwards (as a client showing them would), and what that costs the gateway is shown apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from typing import Any

import httpx

from bench.measure import bench_stack, cli, machine
from devkit.documents import b64, sample_pdf
from devkit.stack import Stack


def image_links(answer: dict[str, Any]) -> list[str]:
    links = []
    for page in answer["result"]["layoutParsingResults"]:
        links += [*page["markdown"].get("images", {}).values(), *page.get("outputImages", {}).values()]
        links += [page["inputImage"]] if page.get("inputImage") else []
    return links


def measure(stack: Stack, body: dict[str, Any], requests: int, urls: bool) -> dict[str, float]:
    figures: dict[str, list[float]] = {"size": [], "wall": [], "gateway": [], "triton": [], "fetched": [],
                                       "fetch_cpu": []}
    with httpx.Client(base_url=stack.url, timeout=600) as http:
        for n in range(requests + 1):
            gateway, triton = stack.cpu_seconds("gateway"), stack.cpu_seconds("triton")
            started = time.monotonic()
            response = http.post("/layout-parsing", json=body)
            wall = time.monotonic() - started
            if response.status_code != 200:
                raise RuntimeError(f"unexpected answer {response.status_code}: {response.text[:300]}")
            answered = stack.cpu_seconds("gateway")
            fetched = sum(len(http.get(link).content) for link in image_links(response.json())) if urls else 0
            if n:   # the first request warms up
                figures["size"].append(len(response.content))
                figures["wall"].append(wall)
                figures["gateway"].append((answered - gateway) * 1000)
                figures["triton"].append((stack.cpu_seconds("triton") - triton) * 1000)
                figures["fetched"].append(fetched)
                figures["fetch_cpu"].append((stack.cpu_seconds("gateway") - answered) * 1000)
    return {name: statistics.median(values) for name, values in figures.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--requests", type=int, default=5, help="measured requests, after one warm-up")
    parser.add_argument("--modes", default="base64,urls")
    args = parser.parse_args(argv)
    print(f"large response: {machine()}")
    body = {"file": b64(sample_pdf(args.pages)[0]), "fileType": 0, "visualize": True}
    print(f"{args.pages}-page visualised PDF, {args.requests} requests per mode, medians:")
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory() as data:
            env = {"HPS_RETURN_IMG_URLS": "true", "HPS_JOB_DATA_DIR": data} if mode == "urls" else {}
            with bench_stack(synthetic=(0.0, 64), gateway_env=env) as stack:
                m = measure(stack, body, args.requests, mode == "urls")
        fetched = (f"; its {m['fetched'] / 1e6:.1f} MB of images fetched: gateway {m['fetch_cpu']:.0f} ms"
                   if mode == "urls" else "")
        print(f"  {mode:6}: answer {m['size'] / 1e6:6.2f} MB, wall {m['wall']:.2f} s; CPU per request: "
              f"gateway {m['gateway']:.0f} ms, Triton {m['triton']:.0f} ms{fetched}")
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))
