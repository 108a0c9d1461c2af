"""The gateway application: `create_app()` wires settings, middleware, routes, error handlers and lifespan.

Served as `gateway.app:app` (`python -m gateway`, or uvicorn from the repository root) and as `app:app` from
inside `gateway/` (the upstream development path), for which the repository root is put on sys.path first.

Middleware, outermost first: request context (logId, X-Request-Id, metrics, last-resort 500) -> CORS ->
drain (SIGTERM) -> rate limit -> body size limit -> routes.
"""
# ruff: noqa: E402  (the sys.path fix below must run before the package imports)

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # imported as `app` from inside gateway/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gateway import __version__, logs, workers
from gateway.settings import Settings, SettingsError, get_settings

STARTUP_FAILURE = 3  # uvicorn's exit code for "failed before serving": its supervisor then stops too
logger = logging.getLogger("gateway.app")

DESCRIPTION = """
Document parsing with PaddleOCR-VL. Every answer is an envelope `{logId, errorCode, errorMsg[, result]}`
whose `errorCode` equals the HTTP status (0 on success). Send your own `logId` in the body to trace a request;
it comes back in the envelope and in the `X-Request-Id` header.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logs.setup(settings.log_level, settings.filter_health_access_log)
    workers.check_totals(settings, workers.worker_count(settings))
    workers.prepare_metrics_dir(settings)
    # Imported only now: prometheus_client picks its multiprocess store when it is first imported.
    from contract.models import LayoutParsingRequest, RestructurePagesRequest
    from gateway import errors, health, inference, metrics, openapi
    from gateway.admission import Pool
    from gateway.dependencies import require_api_key
    from gateway.middleware import BodyLimitMiddleware, ContextMiddleware
    from gateway.ratelimit import RateLimiter, RateLimitMiddleware, make_storage
    from gateway.shutdown import Drain, DrainMiddleware
    from gateway.triton import TritonClient

    drain = Drain()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        slot = workers.claim(settings)
        queue, wait = slot.share(settings.max_queued_requests), settings.max_queue_wait
        app.state.pools = {
            "inference": Pool("inference", slots=slot.share(settings.max_concurrent_requests),
                              queue_size=queue, max_wait=wait),
            "non-inference": Pool("non-inference", queue_size=queue, max_wait=wait,
                                  slots=slot.share(settings.max_concurrent_non_inference_requests)),
        }
        triton = TritonClient(settings.triton_url)
        http = httpx.AsyncClient(trust_env=False)
        app.state.triton = triton
        app.state.readiness = health.Readiness(triton, http, settings.vlm_urls, settings.health_check_timeout)
        drain.install(settings.drain_timeout)
        pools = app.state.pools
        logger.info("worker %d of %d: %d inference and %d non-inference slots, queues of %d; Triton at %s",
                    slot.index + 1, slot.count, pools["inference"].slots, pools["non-inference"].slots,
                    pools["inference"].queue_size, settings.triton_url)
        try:
            yield
        finally:
            drain.uninstall()
            await triton.close()
            await http.aclose()
            slot.release()
            metrics.worker_exited()

    app = FastAPI(title="PaddleOCR-VL document parsing", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.settings = settings
    app.state.drain = drain
    errors.install(app)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_size)
    if settings.rate_limit:
        shared = str(workers.run_dir(settings)) if workers.worker_count(settings) > 1 else None
        limiter = RateLimiter(settings.rate_limit, make_storage(settings.rate_limit_storage, shared),
                              settings.api_keys, settings.trusted_proxies)
        app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(DrainMiddleware, drain=drain)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-Id"],
            expose_headers=["X-Request-Id", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining",
                            "RateLimit-Reset"])
    app.add_middleware(ContextMiddleware)

    api_guard = [Depends(require_api_key)] if settings.api_keys else []
    app.include_router(inference.router, dependencies=api_guard)
    app.include_router(health.router)
    app.include_router(metrics.router)
    openapi.install(app, [LayoutParsingRequest, RestructurePagesRequest])
    return app


def _app_or_exit() -> FastAPI:
    """The module-level app; a bad setting stops start-up with one line instead of a traceback."""
    try:
        return create_app()
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        raise SystemExit(STARTUP_FAILURE) from None


app = _app_or_exit()
