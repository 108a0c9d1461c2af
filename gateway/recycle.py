"""Recycling, a safety net for slow leaks: a worker past `HPS_WORKER_MAX_REQUESTS` answered requests or past
`HPS_WORKER_MAX_MEMORY_MB` of RSS restarts itself gracefully. Off by default.

The worker hands itself to uvicorn's own shutdown, not to the SIGTERM drain (`Drain.recycle`): it stops
taking connections at once (the other workers take them), the requests it has in flight finish (up to
`HPS_DRAIN_TIMEOUT`), its jobs go back to the store for another worker to go on with, and uvicorn's
supervisor starts a new worker in its place. So nothing is refused or lost; with a single worker, the
process exits and its container's restart policy brings it back. Each worker's request limit gets up to 10%
random jitter, so that workers started together do not all restart together.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("gateway.recycle")

CHECK_EVERY = 5.0   # seconds between looks at the worker's memory
_STATM = Path("/proc/self/statm")


def rss_bytes() -> int | None:
    """This process's resident memory (Linux); None where it cannot be read."""
    try:
        return int(_STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Recycler:
    def __init__(self, *, max_requests: int, max_memory_mb: int,
                 restart: Callable[[], Coroutine[Any, Any, None]], check_every: float = CHECK_EVERY) -> None:
        self.max_requests = max_requests + random.randint(0, max_requests // 10) if max_requests else 0
        self.max_memory = max_memory_mb * 1024 * 1024
        self.check_every = check_every
        self.answered = 0
        self._restart = restart
        self._restarting: asyncio.Task[None] | None = None

    def answered_one(self) -> None:
        self.answered += 1
        if self.max_requests and self.answered >= self.max_requests:
            self._recycle(f"{self.answered} requests answered")

    async def watch_memory(self) -> None:
        """Look at the worker's RSS every few seconds, until it is past the ceiling (or forever)."""
        if not self.max_memory:
            return
        while self._restarting is None:
            await asyncio.sleep(self.check_every)
            rss = rss_bytes()
            if rss is None:
                logger.warning("HPS_WORKER_MAX_MEMORY_MB: this system does not show a process's memory")
                return
            if rss > self.max_memory:
                self._recycle(f"{rss / 2**20:.0f} MiB resident, over the ceiling of "
                              f"{self.max_memory / 2**20:.0f} MiB")

    def _recycle(self, why: str) -> None:
        if self._restarting is not None:
            return
        logger.warning("worker %d: recycling (%s): requests in flight finish, a new worker takes over",
                       os.getpid(), why)
        self._restarting = asyncio.get_running_loop().create_task(self._restart(), name="recycle")


class RecycleMiddleware:
    """Counts the API requests this worker answered (probes and metrics are not counted)."""

    def __init__(self, app: ASGIApp, recycler: Recycler, exempt: frozenset[str]) -> None:
        self.app, self.recycler, self.exempt = app, recycler, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.recycler.answered_one()
