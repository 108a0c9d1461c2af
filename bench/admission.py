"""What admission costs per request: taking and giving back a slot, in memory and on the shared table.

    python -m bench.admission [--rounds 5000] [--processes 4]

One process alone (the uncontended cost), then `--processes` processes at once on one table (as the workers of
`python -m gateway` are), each taking and giving back slots of a pool with room for all: microseconds per
slot, the median over the processes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.measure import cli, machine
from gateway.admission import LocalPool, Pool
from gateway.shared_admission import Board, SharedPool


async def _cycle(pool: Pool, rounds: int) -> float:
    """Microseconds per take-and-give-back of a slot."""
    deadline = time.monotonic() + 3600
    started = time.perf_counter()
    for _ in range(rounds):
        async with pool.slot(deadline):
            pass
    return (time.perf_counter() - started) / rounds * 1e6


def _shared(directory: str, rounds: int) -> float:
    async def run() -> float:
        board = Board(Path(directory))
        try:
            pool = SharedPool("bench", slots=64, queue_size=64, max_wait=60, board=board)
            return await _cycle(pool, rounds)
        finally:
            board.close()

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args(argv)
    print(f"admission: {machine()}")
    local = asyncio.run(_cycle(LocalPool("bench", slots=64, queue_size=64, max_wait=60), args.rounds))
    print(f"in memory (one process):           {local:7.1f} us per slot")
    with tempfile.TemporaryDirectory() as directory:
        alone = _shared(directory, args.rounds)
        print(f"shared table, one process:         {alone:7.1f} us per slot")
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            each = pool.starmap(_shared, [(directory, args.rounds)] * args.processes)
        print(f"shared table, {args.processes} processes at once:  {statistics.median(each):7.1f} us per "
              f"slot (median of the processes; max {max(each):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(cli(main))
