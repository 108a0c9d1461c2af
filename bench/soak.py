"""A soak: mixed traffic against the local stack for `--minutes`, and whether anything grows.

    python -m bench.soak [--minutes 30] [--every 60] [--warm-up 5] [--service-time 0.05] [--parallel 16]

The traffic is `devkit.soak.Traffic`'s: synchronous requests of 1 to 30 pages with and without `visualize`,
jobs streamed or cancelled, bad inputs, clients that give up, and a burst past the admission totals every
20 s; the synthetic recogniser (`--parallel` calls at once, `--service-time` each) keeps the requests many.
Every `--every` seconds a line per sample: each tier's RSS, descriptors and threads, Triton's shared-memory
regions, the files of the gateway's run directory, and the jobs and answer images kept (retention: 2
minutes, so that they expire during the run). After the warm-up and at the end, the traffic pauses for a
quiet sample; the growth between the two is held against the targets: RSS under 10% per tier, no more
descriptors, threads, regions or run files, and nothing kept past its retention.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.measure import bench_stack, cli, machine
from devkit.soak import Sample, Traffic, growth, sample
from devkit.stack import Stack

RSS_TARGET = 0.10
RETENTION = 120     # seconds: jobs and their files come and go during the soak
SWEEP_SLACK = 60    # seconds a runner may take to see that a job expired
QUIET = 5.0         # seconds with no traffic before a quiet sample


def line(s: Sample) -> str:
    tiers = "  ".join(f"{t} {f.rss / 2**20:5.0f} MiB {f.fds:3d} fd {f.threads:3d} th"
                      for t, f in s.tiers.items())
    return (f"{s.seconds / 60:5.1f} min  {tiers}  shm {s.shm}  run files {s.run_files}  kept {s.data_files} "
            f"files, {s.data_bytes / 2**20:.0f} MiB, oldest {s.oldest:.0f} s")


async def quiet(stack: Stack, started: float, data: Path) -> Sample:
    """A sample once no request is in flight (what a leak leaves behind shows best there)."""
    await asyncio.to_thread(stack.slots_free, 120)
    await asyncio.sleep(QUIET)
    return await asyncio.to_thread(sample, stack, started, data)


async def soak(stack: Stack, minutes: float, warm_up: float, every: float,
               data: Path) -> tuple[Sample, Sample, Traffic]:
    """Traffic for `warm_up` minutes, a quiet sample, traffic to `minutes`, a quiet sample at the end; a
    sample every `every` seconds all along."""
    traffic, started = Traffic(stack.url), time.monotonic()

    async def run(seconds: float) -> None:
        running = asyncio.create_task(traffic.run(seconds))
        while not running.done():
            await asyncio.wait({running}, timeout=every)
            print(line(await asyncio.to_thread(sample, stack, started, data)), flush=True)
        await running

    await run(warm_up * 60)
    before = await quiet(stack, started, data)
    print(line(before), "(quiet: the baseline)", flush=True)
    await run((minutes - warm_up) * 60)
    after = await quiet(stack, started, data)
    print(line(after), "(quiet: the end)", flush=True)
    return before, after, traffic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--every", type=float, default=60, help="seconds between samples")
    parser.add_argument("--warm-up", type=float, default=5, help="minutes before growth is counted")
    parser.add_argument("--service-time", type=float, default=0.05)
    parser.add_argument("--parallel", type=int, default=16)
    args = parser.parse_args(argv)
    print(f"soak: {machine()}")
    with tempfile.TemporaryDirectory() as data:
        env = {"HPS_JOB_DATA_DIR": data, "HPS_JOB_RETENTION": str(RETENTION)}
        with bench_stack((args.service_time, args.parallel), gateway_env=env) as stack:
            before, after, traffic = asyncio.run(soak(stack, args.minutes, args.warm_up, args.every,
                                                      Path(data)))
    print("answers:", ", ".join(f"{kind} {n}" for kind, n in sorted(traffic.outcomes.items())))
    for failure in traffic.failures[:20]:
        print("  failure:", failure)
    print(f"growth from minute {args.warm_up:g} to the end, both quiet:")
    for name, value in growth(before, after).items():
        target = RSS_TARGET if name.endswith("rss") else 0
        shown = f"{value:+.1%}" if name.endswith("rss") else f"{value:+.0f}"
        print(f"  {name:16} {shown:>8}  {'ok' if value <= target else 'target missed'}")
    kept = after.oldest <= RETENTION + SWEEP_SLACK
    print(f"  oldest job or answer kept: {after.oldest:.0f} s (retention {RETENTION} s)  "
          f"{'ok' if kept else 'target missed'}")
    return 1 if traffic.failures else 0


if __name__ == "__main__":
    sys.exit(cli(main))
