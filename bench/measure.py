"""What every benchmark needs: bounded closed-loop clients, percentiles, the machine line, request bodies."""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil

from devkit.stack import Stack, running_stack


def machine() -> str:
    """One line naming the machine, since every figure here depends on it."""
    memory = psutil.virtual_memory().total / 2**30
    return (f"{os.cpu_count()} cores ({platform.machine()}), {memory:.0f} GiB RAM, no GPU; "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent on anything but idling, steal (a busy host) included."""
    t = psutil.cpu_times()
    return sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def _own_seconds() -> float:
    """CPU seconds of this process and its descendants, live or reaped (the stack's tiers are ours)."""
    me = psutil.Process()
    t = me.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in me.children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system + c.children_user + c.children_system
        except psutil.NoSuchProcess:
            pass
    return total


class Others:
    """How many cores other processes took while a benchmark ran: two cores are easily disturbed."""

    def __init__(self) -> None:
        self.wall, self.busy, self.own = time.monotonic(), _busy_seconds(), _own_seconds()

    def line(self) -> str:
        wall = time.monotonic() - self.wall
        cores = max(0.0, (_busy_seconds() - self.busy) - (_own_seconds() - self.own)) / wall
        return (f"processes other than this benchmark and the stack it started used {cores:.2f} cores "
                "on average during the run")


def cli(main: Callable[[], int]) -> int:
    """Run a benchmark; Ctrl-C ends it with one line, not a traceback (the stack is stopped either way)."""
    others = Others()
    try:
        code = main()
        print(others.line())
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (linear interpolation); NaN for no values."""
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class Run:
    """Answers of one closed-loop run: latency of every success, and how many answers of each kind."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def ms(self, q: float) -> float:
        return pct(self.latencies, q) * 1000


async def closed_loop(call: Callable[[], Awaitable[str]], *, clients: int, seconds: float,
                      max_requests: int) -> Run:
    """`clients` loops, each sending the next request as soon as the last is answered, until `seconds` have
    passed or `max_requests` were sent in all. `call` returns "ok" for a success, else a short outcome name;
    an exception counts under its type. The time is that of the last answer, so the rate is not diluted."""
    run = Run()
    sent = 0
    start = time.perf_counter()
    deadline = start + seconds
    last = start

    async def client() -> None:
        nonlocal sent, last
        while sent < max_requests and time.perf_counter() < deadline:
            sent += 1
            t0 = time.perf_counter()
            try:
                outcome = await call()
            except Exception as exc:
                outcome = type(exc).__name__
            now = time.perf_counter()
            last = max(last, now)
            run.outcomes[outcome] += 1
            if outcome == "ok":
                run.latencies.append(now - t0)

    await asyncio.gather(*(client() for _ in range(clients)))
    run.seconds = last - start
    return run


def bench_stack(synthetic: tuple[float, int] | None = None,
                **kwargs: Any) -> AbstractContextManager[Stack]:
    """The local stack as the benchmarks run it: the environment's HPS_* settings kept, the tiers' logs at
    WARNING (no per-request lines in what is measured), and `synthetic=(service time, parallel calls)`
    serving the synthetic recogniser instead of the CPU one."""
    if synthetic is not None:
        service_time, parallel = synthetic
        kwargs |= {"recogniser": "synthetic",
                   "recogniser_args": ["--service-time", str(service_time), "--parallel", str(parallel)]}
    return running_stack(inherit=True, log_level="WARNING", **kwargs)


def listener(port: int) -> int | None:
    """The process serving a local TCP port: for uvicorn's workers (multiprocessing children sharing their
    parent's socket), the parent that started them, so that its tree holds them all."""
    pid = next((c.pid for c in psutil.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid), None)
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        while "multiprocessing" in " ".join(proc.cmdline()) and (parent := proc.parent()) is not None:
            proc = parent
        return proc.pid
    except psutil.NoSuchProcess:
        return None
