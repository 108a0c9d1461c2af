"""Load generator: many concurrent clients for a bounded time against the stack, or against a running gateway.

    python -m bench.load [--clients 64] [--seconds 30] [--max-concurrent 8] [--max-queued 16]
    python -m bench.load --url http://127.0.0.1:8080 [--triton http://127.0.0.1:8000]

Without `--url` it starts the stack with the synthetic recogniser and the gateway's admission limits set to
`--max-concurrent` / `--max-queued` (HPS_MAX_CONCURRENT_REQUESTS / HPS_MAX_QUEUED_REQUESTS), so that more
clients than slots + queue put it in overload. Each client sends a 1-page image to `/layout-parsing` again
and again until `--seconds` pass (or it has sent `--max-requests`); after a 429 or 503 it waits the
Retry-After it was given (at most `--max-backoff` s), as a polite client does. Requests in flight at the end
may finish within `--drain` s.

Printed: successes per second, latency percentiles of successes and of rejections, answers by status, how
many 503s came while this benchmark had fewer requests in flight than the gateway's totals (slots + queue:
the gateway had room for them, so the target is 0), the
resident memory of the gateway (all its processes) and of Triton (server + Python backend stubs) before, at
peak and after, and the cores each used while loaded. Intended answers are 200, and 429/503 carrying an
envelope with the same errorCode and a Retry-After header; anything else is listed as unexpected and makes
the exit status 1. With `--url`, memory and cores are read from the processes listening on the gateway's port
and on `--triton`'s (when they are local).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from bench.measure import bench_stack, cli, listener, machine, pct
from devkit.documents import b64, encode_image, render_page, sample_pdf
from devkit.stack import cpu_seconds, process_tree, rss_mib

INTENDED = {429: "rate limited", 503: "overloaded"}


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    ok: list[float] = field(default_factory=list)  # latency of each success
    rejected: list[float] = field(default_factory=list)  # latency of each intended 429/503
    unexpected: Counter[str] = field(default_factory=Counter)  # what, with a short sample of the answer
    first_seen: dict[str, float] = field(default_factory=dict)  # seconds into the run
    needless_503: int = 0  # refused while fewer than the totals were in flight (ours, the request aside)

    def note(self, what: str, when: float) -> None:
        self.unexpected[what] += 1
        self.first_seen.setdefault(what, when)


def classify(response: httpx.Response) -> tuple[str, str | None]:
    """("ok" | "rejected" | "unexpected", why it is unexpected)."""
    status = response.status_code
    if status == 200:
        return "ok", None
    if status in INTENDED:
        try:
            code = response.json().get("errorCode")
        except ValueError:
            code = None
        if code == status and response.headers.get("retry-after", "").isdigit():
            return "rejected", None
        return "unexpected", f"{status} without an envelope or Retry-After: {response.text[:120]!r}"
    return "unexpected", f"{status}: {response.text[:120]!r}"


async def drive(url: str, body: bytes, args: argparse.Namespace) -> tuple[Tally, float]:
    tally = Tally()
    # Idle connections are dropped before uvicorn's 5 s keep-alive ends, or a request may race its close.
    limits = httpx.Limits(max_connections=args.clients, keepalive_expiry=4.0,
                          max_keepalive_connections=0 if args.new_connections else args.clients)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as http:
        start = time.perf_counter()
        deadline = start + args.seconds
        last = start
        in_flight = 0

        async def client() -> None:
            nonlocal last, in_flight
            for _ in range(args.max_requests):
                if time.perf_counter() >= deadline:
                    return
                t0 = time.perf_counter()
                others = in_flight
                in_flight += 1
                try:
                    response = await http.post("/layout-parsing", content=body, headers=headers)
                except httpx.HTTPError as exc:
                    tally.statuses[type(exc).__name__] += 1
                    tally.note(f"{type(exc).__name__} {str(exc)[:80]!r}", time.perf_counter() - start)
                    continue
                finally:
                    in_flight -= 1
                if response.status_code == 503 and max(others, in_flight) < args.capacity:
                    tally.needless_503 += 1
                now = time.perf_counter()
                last = max(last, now)
                tally.statuses[str(response.status_code)] += 1
                kind, why = classify(response)
                if kind == "ok":
                    tally.ok.append(now - t0)
                elif kind == "rejected":
                    tally.rejected.append(now - t0)
                    wait = min(float(response.headers["retry-after"]), args.max_backoff)
                    await asyncio.sleep(max(0.0, min(wait, deadline - time.perf_counter())))
                else:
                    tally.note(why or "?", now - start)

        tasks = [asyncio.ensure_future(client()) for _ in range(args.clients)]
        _, pending = await asyncio.wait(tasks, timeout=args.seconds + args.drain)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if pending:
            tally.note(f"{len(pending)} clients still waiting after the drain time", last - start)
    return tally, last - start


class Memory:
    """RSS of process groups, sampled in a thread while the load runs."""

    def __init__(self, groups: dict[str, int | None]) -> None:
        self.groups = {name: pid for name, pid in groups.items() if pid is not None}
        self.peak = dict.fromkeys(self.groups, 0.0)

    def now(self) -> dict[str, float]:
        out = {name: rss_mib(process_tree(pid)) for name, pid in self.groups.items()}
        for name, value in out.items():
            self.peak[name] = max(self.peak[name], value)
        return out

    async def sample(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.now)
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass


async def run(url: str, groups: dict[str, int | None], args: argparse.Namespace) -> int:
    image = encode_image(render_page(sample_pdf(1)[0], dpi=72))
    body = httpx.Request("POST", url, json={"file": b64(image), "fileType": 1, "visualize": False}).content
    async with httpx.AsyncClient(base_url=url, timeout=args.timeout) as http:  # warm-up
        warm = await http.post("/layout-parsing", content=body, headers={"content-type": "application/json"})
        warm.raise_for_status()
    memory = Memory(groups)
    before = memory.now()
    cpu_before = {name: cpu_seconds(process_tree(pid)) for name, pid in memory.groups.items()}
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(memory.sample(stop))
    tally, seconds = await drive(url, body, args)
    cores = {name: (cpu_seconds(process_tree(pid)) - cpu_before[name]) / seconds
             for name, pid in memory.groups.items()}
    stop.set()
    await sampler
    await asyncio.sleep(1.0)
    after = memory.now()

    total = sum(tally.statuses.values())
    print(f"{total} answers in {seconds:.1f} s: {len(tally.ok) / seconds:.2f} successes/s")
    print("answers: " + ", ".join(f"{k} x{v}" for k, v in sorted(tally.statuses.items())))
    if args.capacity:
        print(f"503s while fewer than the totals ({args.capacity}) were in flight: {tally.needless_503} "
              "(target 0)")
    for name, values in (("successes", tally.ok), ("rejections", tally.rejected)):
        if values:
            ms = [pct(values, q) * 1000 for q in (50, 95, 99, 100)]
            print(f"{name:10} latency ms: p50 {ms[0]:.0f}  p95 {ms[1]:.0f}  p99 {ms[2]:.0f}  max {ms[3]:.0f}")
    for name in memory.groups:
        print(f"RSS {name:8} MiB: before {before[name]:.0f}, peak {memory.peak[name]:.0f}, "
              f"after {after[name]:.0f}")
    if cores:
        print("cores used while loaded: " + ", ".join(f"{name} {value:.2f}" for name, value in cores.items()))
    if tally.unexpected:
        print("UNEXPECTED answers:")
        for what, count in tally.unexpected.most_common(10):
            print(f"  x{count} {what} (first {tally.first_seen[what]:.1f} s into the run)")
        return 1
    print("only intended answers (200; 429/503 with envelope and Retry-After)")
    return 0


def port_of(url: str) -> int | None:
    return urlsplit(url).port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running gateway; without it the stack is started here")
    parser.add_argument("--triton", help="with --url: Triton's HTTP or gRPC URL, for its memory")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30.0, help="time the clients keep sending")
    parser.add_argument("--max-requests", type=int, default=10_000, help="per client, at most")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds left to requests in flight")
    parser.add_argument("--max-backoff", type=float, default=1.0, help="cap on the Retry-After honoured")
    parser.add_argument("--max-concurrent", type=int, default=8, help="HPS_MAX_CONCURRENT_REQUESTS (own)")
    parser.add_argument("--max-queued", type=int, default=16, help="HPS_MAX_QUEUED_REQUESTS (own)")
    parser.add_argument("--rate-limit", default="", help="HPS_RATE_LIMIT, e.g. 20/second (own stack)")
    parser.add_argument("--new-connections", action="store_true",
                        help="a new connection per request (the kernel picks a gateway worker for each)")
    parser.add_argument("--capacity", type=int, default=0,
                        help="with --url: the gateway's slots + queue, to count 503s it had room for")
    parser.add_argument("--service-time", type=float, default=0.5, help="synthetic recogniser (own stack)")
    parser.add_argument("--parallel", type=int, default=64, help="synthetic recogniser (own stack)")
    args = parser.parse_args(argv)
    print(f"load: {machine()}")
    print(f"{args.clients} clients for {args.seconds:g} s, each sending a 1-page PNG (72 dpi) to "
          "/layout-parsing")
    if args.url:
        groups = {"gateway": listener(port_of(args.url) or 80)}
        if args.triton:
            groups["triton"] = listener(port_of(args.triton) or 8000)
        return asyncio.run(run(args.url.rstrip("/"), groups, args))
    args.capacity = args.max_concurrent + args.max_queued
    gateway_env = {"HPS_MAX_CONCURRENT_REQUESTS": str(args.max_concurrent),
                   "HPS_MAX_QUEUED_REQUESTS": str(args.max_queued), "HPS_RATE_LIMIT": args.rate_limit}
    workers = os.environ.get("UVICORN_WORKERS", "4 (default)")
    print(f"own stack: HPS_MAX_CONCURRENT_REQUESTS={args.max_concurrent}, HPS_MAX_QUEUED_REQUESTS="
          f"{args.max_queued}, HPS_RATE_LIMIT={args.rate_limit or 'off'}, UVICORN_WORKERS={workers}; "
          f"synthetic recogniser {args.service_time:g} s x {args.parallel}")
    with bench_stack(synthetic=(args.service_time, args.parallel), gateway_env=gateway_env) as stack:
        groups = {tier: stack.supervisor.pid(tier) for tier in ("gateway", "triton")}
        return asyncio.run(run(stack.url, groups, args))


if __name__ == "__main__":
    sys.exit(cli(main))
