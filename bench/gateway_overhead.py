"""What the gateway costs: the same requests through it and straight to Triton, in one run, on one stack.

    python -m bench.gateway_overhead [--seconds 5] [--rounds 2] [--clients 8]

The direct path is what the gateway itself sends: gRPC, a BYTES tensor `input` of shape [1, 1] holding the
request's JSON. Both paths send the same pre-serialised body and parse the answer's envelope. Requests are
small so that the gateway's share shows: `/restructure-pages` on one small page, and `/layout-parsing` on a
tiny image, with and without layout detection, against the synthetic recogniser at zero service time.
For each workload and path: latency with one client (p50, p99) and throughput with `--clients` clients,
with the CPU milliseconds per request of the gateway, of Triton and of this client (all share the machine's
cores, so the CPU figures say where a throughput ratio comes from). Phases alternate direct/gateway for
`--rounds` rounds, pooled, so that drift hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import numpy as np
import tritonclient.grpc.aio as grpcclient

from bench.measure import Run, bench_stack, cli, closed_loop, machine
from devkit.documents import b64, encode_image, render_page, sample_pdf
from devkit.stack import Stack

PATHS = ("direct", "gateway")


def compact(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def outcome(status: int, body: bytes) -> str:
    envelope = json.loads(body)
    return "ok" if status == 200 and envelope.get("errorCode") == 0 else f"error {envelope.get('errorCode')}"


class Paths:
    """One call per path: `direct` (Triton gRPC) and `gateway` (HTTP)."""

    def __init__(self, gateway: httpx.AsyncClient, triton: grpcclient.InferenceServerClient) -> None:
        self.gateway, self.triton = gateway, triton

    async def direct_call(self, model: str, payload: bytes) -> tuple[int, bytes]:
        tensor = grpcclient.InferInput("input", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[payload]], dtype=np.object_))
        result = await self.triton.infer(model, [tensor], client_timeout=60)
        return 200, bytes(result.as_numpy("output")[0, 0])

    async def gateway_call(self, model: str, payload: bytes) -> tuple[int, bytes]:
        response = await self.gateway.post(f"/{model}", content=payload,
                                           headers={"content-type": "application/json"})
        return response.status_code, response.content

    def caller(self, path: str, model: str, payload: bytes) -> Callable[[], Awaitable[str]]:
        send = self.direct_call if path == "direct" else self.gateway_call

        async def call() -> str:
            return outcome(*await send(model, payload))

        return call


async def workloads(paths: Paths) -> dict[str, tuple[str, bytes]]:
    """Name -> (model, body). The restructure page is a real prunedResult of the tiny image."""
    image = b64(encode_image(render_page(sample_pdf(1)[0], dpi=30)))
    with_layout = {"file": image, "fileType": 1, "visualize": False}
    _, answer = await paths.direct_call("layout-parsing", compact(with_layout))
    page = json.loads(answer)["result"]["layoutParsingResults"][0]
    pages = [{"prunedResult": page["prunedResult"], "markdownImages": page["markdown"]["images"]}]
    restructure = {"pages": pages}
    return {
        "restructure-pages, 1 small page": ("restructure-pages", compact(restructure)),
        "layout-parsing, 248x351 PNG, no layout": (
            "layout-parsing", compact({**with_layout, "useLayoutDetection": False})),
        "layout-parsing, 248x351 PNG, with layout": ("layout-parsing", compact(with_layout)),
    }


def merge(runs: list[Run]) -> Run:
    out = Run()
    for run in runs:
        out.seconds += run.seconds
        out.latencies += run.latencies
        out.outcomes.update(run.outcomes)
    return out


CPU_OF = ("gateway", "triton", "client")


def cpu_now(stack: Stack) -> dict[str, float]:
    return {"gateway": stack.cpu_seconds("gateway"), "triton": stack.cpu_seconds("triton"),
            "client": time.process_time()}


@dataclass
class Figures:
    latency: Run  # one client
    rate: Run  # --clients clients
    cpu_ms: dict[str, float]  # CPU ms per request in the throughput phase, per process group


async def workload(stack: Stack, paths: Paths, model: str, payload: bytes,
                   args: argparse.Namespace) -> dict[str, Figures]:
    latency: dict[str, list[Run]] = {p: [] for p in PATHS}
    rate: dict[str, list[Run]] = {p: [] for p in PATHS}
    cpu = {p: dict.fromkeys(CPU_OF, 0.0) for p in PATHS}
    for path in PATHS:  # warm both paths (connections, worker threads) before measuring
        await closed_loop(paths.caller(path, model, payload), clients=4, seconds=2, max_requests=12)
    for _ in range(args.rounds):
        for path in PATHS:
            call = paths.caller(path, model, payload)
            latency[path].append(
                await closed_loop(call, clients=1, seconds=args.seconds, max_requests=args.max_requests))
            before = cpu_now(stack)
            rate[path].append(await closed_loop(call, clients=args.clients, seconds=args.seconds,
                                                max_requests=args.max_requests * args.clients))
            for key, value in cpu_now(stack).items():
                cpu[path][key] += value - before[key]
    out = {}
    for path in PATHS:
        thr = merge(rate[path])
        count = max(len(thr.latencies), 1)
        out[path] = Figures(merge(latency[path]), thr, {k: v / count * 1000 for k, v in cpu[path].items()})
    return out


async def measure(stack: Stack, args: argparse.Namespace) -> int:
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=stack.url, timeout=60, limits=limits) as http:
        triton = grpcclient.InferenceServerClient(stack.triton_grpc)
        try:
            paths = Paths(http, triton)
            loads = await workloads(paths)
            print(f"p50/p99: 1 client; req/s: {args.clients} clients, and the CPU ms per request that each "
                  "process group spent in that phase")
            print(f"{'workload':42} {'path':8} {'n':>5} {'p50 ms':>7} {'p99 ms':>7} {'req/s':>7} "
                  + " ".join(f"{name:>8}" for name in CPU_OF))
            failed = False
            for name, (model, payload) in loads.items():
                figures = await workload(stack, paths, model, payload, args)
                for path, f in figures.items():
                    cpu = " ".join(f"{f.cpu_ms[k]:>8.2f}" for k in CPU_OF)
                    print(f"{name:42} {path:8} {len(f.latency.latencies):>5} {f.latency.ms(50):>7.1f} "
                          f"{f.latency.ms(99):>7.1f} {f.rate.rate:>7.1f} {cpu}")
                    bad = {k: v for k, v in (f.latency.outcomes + f.rate.outcomes).items() if k != "ok"}
                    if bad:
                        failed = True
                        print(f"  {path}: unexpected answers {bad}")
                d, g = figures["direct"], figures["gateway"]
                print(f"{'':42} {'gateway adds':>14} {g.latency.ms(50) - d.latency.ms(50):>+13.1f} "
                      f"{g.latency.ms(99) - d.latency.ms(99):>+7.1f}  throughput ratio "
                      f"{g.rate.rate / d.rate.rate:.2f}")
            return 1 if failed else 0
        finally:
            await triton.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=2, help="direct/gateway alternations per workload")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients of the throughput phase")
    parser.add_argument("--max-requests", type=int, default=400,
                        help="requests per client per phase, at most")
    args = parser.parse_args(argv)
    print(f"gateway overhead: {machine()}")
    print("stack: gateway (default settings) -> Triton -> synthetic recogniser (service time 0, 64 parallel)")
    with bench_stack(synthetic=(0.0, 64)) as stack:
        return asyncio.run(measure(stack, args))


if __name__ == "__main__":
    sys.exit(cli(main))
