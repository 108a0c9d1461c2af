"""Liveness and readiness probes.

`/health` says the process answers and touches nothing else. `/health/ready` asks Triton (server and both
models) and every VLM server's `/health`, each bounded by `HPS_HEALTH_CHECK_TIMEOUT`, all at once. The answer
is reused for up to one second and concurrent probes share one check, so a crowd of probes costs one round.

With several workers, each probe is answered by the one worker the kernel hands its connection to, and the
answer is that worker's: Triton is asked over the same gRPC channel that carries the worker's requests, so
Ready means this worker can reach Triton now (within the one-second reuse), not that every worker can. Every
worker reconnects within about a second of Triton's return (`gateway.triton`), so they agree soon after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from contract.envelope import envelope
from contract.models import ErrorEnvelope
from gateway.context import current_log_id
from gateway.errors import NotReady
from gateway.openapi import error_responses
from gateway.shutdown import Drain
from gateway.triton import TritonClient

MODELS = ("layout-parsing", "restructure-pages")
CACHE_SECONDS = 1.0


class Readiness:
    def __init__(self, triton: TritonClient, http: httpx.AsyncClient, vlm_urls: tuple[str, ...],
                 timeout: float) -> None:
        self.triton, self.http, self.vlm_urls, self.timeout = triton, http, vlm_urls, timeout
        self._checked_at = -CACHE_SECONDS
        self._problems: list[str] = []
        self._running: asyncio.Future[list[str]] | None = None

    async def problems(self) -> list[str]:
        """What is not ready (empty: ready), at most CACHE_SECONDS old."""
        if time.monotonic() - self._checked_at < CACHE_SECONDS:
            return self._problems
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._check())
        return await asyncio.shield(self._running)

    async def _check(self) -> list[str]:
        checks: list[Awaitable[str | None]] = [self._bounded(self._triton_server, "Triton server")]
        checks += [self._bounded(self._model(m), f"Triton model '{m}'") for m in MODELS]
        checks += [self._bounded(self._vlm(url), f"VLM server {url}") for url in self.vlm_urls]
        found = [p for p in await asyncio.gather(*checks) if p]
        self._problems, self._checked_at = found, time.monotonic()
        return found

    async def _bounded(self, check: Callable[[], Awaitable[str | None]], part: str) -> str | None:
        try:
            async with asyncio.timeout(self.timeout):
                return await check()
        except TimeoutError:
            return f"{part} did not answer within {self.timeout:g} s"
        except Exception:
            return f"{part} is unreachable"

    async def _triton_server(self) -> str | None:
        ready = await self.triton.server_ready(self.timeout)
        return None if ready else f"Triton server at {self.triton.url} is not ready"

    def _model(self, model: str) -> Callable[[], Awaitable[str | None]]:
        async def check() -> str | None:
            ready = await self.triton.model_ready(model, self.timeout)
            return None if ready else f"Triton model '{model}' is not ready"
        return check

    def _vlm(self, url: str) -> Callable[[], Awaitable[str | None]]:
        async def check() -> str | None:
            status = (await self.http.get(f"{url}/health", timeout=self.timeout)).status_code
            return None if status == 200 else f"VLM server {url} is not ready (HTTP {status})"
        return check


def get_readiness(request: Request) -> Readiness:
    return request.app.state.readiness  # type: ignore[no-any-return]


def get_drain(request: Request) -> Drain:
    return request.app.state.drain  # type: ignore[no-any-return]


router = APIRouter(tags=["operations"])


@router.get("/health", response_model=ErrorEnvelope, summary="Liveness",
            responses=error_responses(500))
async def health() -> JSONResponse:
    """Answers while the process runs; never touches Triton or the VLM."""
    return JSONResponse(envelope(current_log_id(), msg="Healthy"))


@router.get("/health/ready", response_model=ErrorEnvelope, summary="Readiness",
            responses=error_responses(500, 503))
async def ready(readiness: Annotated[Readiness, Depends(get_readiness)],
                drain: Annotated[Drain, Depends(get_drain)]) -> JSONResponse:
    """Ready when Triton and both models are ready and every VLM server answers /health with 200.

    Not ready (or shutting down): 503 whose errorMsg names what is not ready.
    """
    if drain.draining:
        raise NotReady("Not ready: gateway is shutting down")
    problems = await readiness.problems()
    if problems:
        raise NotReady("Not ready: " + "; ".join(problems))
    return JSONResponse(envelope(current_log_id(), msg="Ready"))
