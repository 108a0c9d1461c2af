"""Graceful shutdown: on SIGTERM, turn unready at once, let in-flight requests finish, then let uvicorn exit.

Uvicorn alone stops listening the moment SIGTERM arrives, so a load balancer could never see readiness turn
503. Here the first SIGTERM only marks the gateway as draining: `/health/ready` answers 503, new API requests
get 503 with `Connection: close`, and requests already in flight go on. When they are done, or after
`HPS_DRAIN_TIMEOUT` (the ones still running are then cancelled, their Triton calls too, and answered 503),
uvicorn's own handler is called and shuts down as usual. A second SIGTERM skips the wait.

With several workers, uvicorn's supervisor passes SIGTERM on to its workers on its next check (every 0.5 s),
so readiness turns 503 within half a second rather than at once; requests accepted meanwhile finish normally.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import metrics
from gateway.errors import ShuttingDown, to_response

logger = logging.getLogger("gateway.shutdown")

# Paths that neither count as in-flight work nor are refused while draining.
EXEMPT = frozenset({"/health", "/health/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc",
                    "/openapi.json"})


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self.cut_off = False  # the drain timeout passed: what is still running is being cancelled
        self.in_flight = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._previous: Any = None

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    def install(self, timeout: float) -> None:
        """Take over SIGTERM (uvicorn's handler is called after the drain). Main thread only."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        self._previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.draining:
                self._hand_over(signum, frame)
                return
            self.draining = True
            loop.call_soon_threadsafe(lambda: loop.create_task(self._drain(signum, timeout)))

        signal.signal(signal.SIGTERM, on_sigterm)

    def uninstall(self) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    async def recycle(self, settle: float = 1.0) -> None:
        """Shut this worker down through uvicorn's own handler, without the drain, while the other workers
        serve (`gateway.recycle`). First it stops listening (uvicorn's servers, reached through its handler),
        and lets the connections it has just accepted send their requests; then uvicorn closes the idle
        ones and lets the requests in flight finish."""
        if self.draining:
            return
        for listener in getattr(getattr(self._previous, "__self__", None), "servers", []):
            listener.close()   # the listening socket only: connections stay open
        await asyncio.sleep(settle)
        self._hand_over(signal.SIGTERM, None)

    async def _drain(self, signum: int, seconds: float) -> None:
        logger.info("SIGTERM: draining %d in-flight request(s), at most %g s", self.in_flight, seconds)
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            logger.warning("drain timeout: cancelling %d request(s) still in flight", self.in_flight)
            self.cut_off = True
            for task in self.tasks:
                task.cancel()
            if self.tasks:
                await asyncio.wait(self.tasks, timeout=5)
        self._hand_over(signum, None)

    def _hand_over(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous
        if callable(previous):
            previous(signum, frame)
        else:  # not under uvicorn: behave as SIGTERM would have
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)


class DrainMiddleware:
    """Counts in-flight API requests; refuses new ones while draining."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app, self.drain = app, drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.drain.draining:
            metrics.reject("shutting_down")
            response = to_response(ShuttingDown(headers={"Connection": "close"}), scope["path"])
            await response(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        self.drain.enter()
        self.drain.tasks.add(task)
        answered = False

        async def send_tracked(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except asyncio.CancelledError:
            if not self.drain.cut_off or answered:
                raise
            if hasattr(task, "uncancel"):  # Python 3.11+
                task.uncancel()
            response = to_response(ShuttingDown("Gateway shut down before the request finished",
                                                headers={"Connection": "close"}), scope["path"])
            await response(scope, receive, send_tracked)
        finally:
            self.drain.tasks.discard(task)
            self.drain.leave()
