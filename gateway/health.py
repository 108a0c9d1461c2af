"""Liveness and readiness probes.

`/health` says the process answers and touches nothing else. `/health/ready` asks every Triton (server and
both models) and every VLM server's `/health`, each bounded by `HPS_HEALTH_CHECK_TIMEOUT`, all at once. The
answer is reused for up to one second and concurrent probes share one check, so a crowd of probes costs one
round. The gateway stays ready while one Triton and one VLM server are (the others are skipped, see
`gateway.triton` and the engine's VLM client), and says which are down.

With several workers, each probe is answered by the one worker the kernel hands its connection to, and the
answer is that worker's: Triton is asked over the same gRPC channel that carries the worker's requests, so
Ready means this worker can reach Triton now (within the one-second reuse), not that every worker can. Every
worker reconnects within about a second of Triton's return (`gateway.triton`), so they agree soon after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
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
from gateway.triton import TritonBackend, TritonClient

MODELS = ("layout-parsing", "restructure-pages")
CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class Verdict:
    """What is not ready, and whether requests can still be served: by one Triton at least (server and both
    models) and, when VLM servers are listed, by one of them at least."""

    serving: bool
    problems: tuple[str, ...] = ()


class Readiness:
    def __init__(self, triton: TritonClient, http: httpx.AsyncClient, vlm_urls: tuple[str, ...],
                 timeout: float) -> None:
        self.triton, self.http, self.vlm_urls, self.timeout = triton, http, vlm_urls, timeout
        self._checked_at = -CACHE_SECONDS
        self._verdict = Verdict(serving=False)
        self._running: asyncio.Future[Verdict] | None = None

    async def verdict(self) -> Verdict:
        """The last check, at most CACHE_SECONDS old."""
        if time.monotonic() - self._checked_at < CACHE_SECONDS:
            return self._verdict
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._check())
        return await asyncio.shield(self._running)

    async def _check(self) -> Verdict:
        tritons = [self._triton(backend) for backend in self.triton.backends]
        vlms = [self._bounded(self._vlm(url), f"VLM server {url}") for url in self.vlm_urls]
        triton_found = await asyncio.gather(*tritons)
        vlm_found = await asyncio.gather(*vlms)
        serving = any(not found for found in triton_found) and (
            not vlm_found or any(found is None for found in vlm_found))
        problems = [p for found in triton_found for p in found] + [p for p in vlm_found if p]
        self._verdict, self._checked_at = Verdict(serving, tuple(problems)), time.monotonic()
        return self._verdict

    async def _triton(self, backend: TritonBackend) -> list[str]:
        """What is not ready on one Triton: its server and each model, asked at once."""
        checks = [self._bounded(self._triton_server(backend), f"Triton server at {backend.url}")]
        checks += [self._bounded(self._model(backend, m), f"Triton model '{m}' at {backend.url}")
                   for m in MODELS]
        return [p for p in await asyncio.gather(*checks) if p]

    async def _bounded(self, check: Awaitable[str | None], part: str) -> str | None:
        try:
            async with asyncio.timeout(self.timeout):
                return await check
        except TimeoutError:
            return f"{part} did not answer within {self.timeout:g} s"
        except Exception:
            return f"{part} is unreachable"

    async def _triton_server(self, backend: TritonBackend) -> str | None:
        ready = await backend.server_ready(self.timeout)
        return None if ready else f"Triton server at {backend.url} is not ready"

    async def _model(self, backend: TritonBackend, model: str) -> str | None:
        ready = await backend.model_ready(model, self.timeout)
        return None if ready else f"Triton model '{model}' at {backend.url} is not ready"

    async def _vlm(self, url: str) -> str | None:
        status = (await self.http.get(f"{url}/health", timeout=self.timeout)).status_code
        return None if status == 200 else f"VLM server {url} is not ready (HTTP {status})"


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
    """Ready when a Triton (server and both models) is ready and a VLM server answers /health with 200.

    With several of either, one that is down leaves the gateway ready: 200 with `Ready, degraded: ` and what
    is down. Not ready (or shutting down): 503 whose errorMsg names what is not ready.
    """
    if drain.draining:
        raise NotReady("Not ready: gateway is shutting down")
    verdict = await readiness.verdict()
    if not verdict.serving:
        raise NotReady("Not ready: " + "; ".join(verdict.problems))
    if verdict.problems:
        return JSONResponse(envelope(current_log_id(), msg="Ready, degraded: " + "; ".join(verdict.problems)))
    return JSONResponse(envelope(current_log_id(), msg="Ready"))
