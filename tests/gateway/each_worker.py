"""Reach every worker of a running gateway in turn: the kernel hands a new connection to whichever worker
accepts first, so the others are paused (SIGSTOP) while one is asked. Used by the reconnect tests here and
by the Docker tests, where the gateway's processes are the container's.

Ask only what is answered quickly: uvicorn's supervisor restarts a worker that misses its 5 s health ping,
and a paused worker does.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psutil


def worker_pids(launcher_pid: int) -> list[int]:
    """The uvicorn workers under `python -m gateway` (multiprocessing children, not its resource tracker)."""
    children = psutil.Process(launcher_pid).children()
    return sorted(c.pid for c in children if "spawn_main" in " ".join(c.cmdline()))


@contextmanager
def only(pid: int, workers: list[int]) -> Iterator[None]:
    """Every other worker paused, so that `pid` accepts every new connection until the block ends."""
    others = [w for w in workers if w != pid]
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        yield
    finally:
        for other in others:
            os.kill(other, signal.SIGCONT)


async def on_new_connections(url: str, count: int, body: dict[str, Any] | None = None) -> list[int]:
    """`count` requests at once, each on its own new connection (GET, or POST of `body`); their statuses."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits, trust_env=False) as client:
        sent = [client.get(url) if body is None else client.post(url, json=body) for _ in range(count)]
        return [r.status_code for r in await asyncio.gather(*sent)]


def each_worker(launcher_pid: int, url: str, count: int, body: dict[str, Any] | None = None
                ) -> dict[int, list[int]]:
    """`count` requests to every worker in turn, each on a new connection: the statuses, by worker."""
    workers = worker_pids(launcher_pid)
    statuses = {}
    for pid in workers:
        with only(pid, workers):
            statuses[pid] = asyncio.run(on_new_connections(url, count, body))
    return statuses
