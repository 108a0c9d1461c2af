"""The gateway application: `create_app()` wires settings, middleware, routes, error handlers and lifespan.

Served by `python -m gateway` (uvicorn's factory mode, `gateway.app:create_app`), which checks the settings
and prepares what the workers share before any worker starts. Nothing happens at import.

Middleware, outermost first: request context (logId, X-Request-Id, metrics, last-resort 500) -> CORS ->
drain (SIGTERM) -> rate limit -> body size limit -> routes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from contract.models import LayoutParsingRequest, RestructurePagesRequest
from gateway import __version__, errors, health, inference, logs, metrics, openapi, workers
from gateway.admission import LocalPool, Pool
from gateway.dependencies import require_api_key
from gateway.middleware import BodyLimitMiddleware, ContextMiddleware
from gateway.ratelimit import RateLimiter, RateLimitMiddleware, make_storage
from gateway.recycle import RecycleMiddleware, Recycler
from gateway.settings import Settings, get_settings
from gateway.shared_admission import Board, SharedPool
from gateway.shutdown import EXEMPT, Drain, DrainMiddleware
from gateway.triton import TritonClient
from imagelinks import ImageLinks
from imagelinks import routes as image_routes
from jobs import routes as job_routes
from jobs import service as jobs
from jobs.settings import get_job_settings
from webui import routes as webui

logger = logging.getLogger("gateway.app")

DESCRIPTION = """
Document parsing with PaddleOCR-VL. Every answer is an envelope `{logId, errorCode, errorMsg[, result]}`
whose `errorCode` equals the HTTP status (0 on success). Send your own `logId` in the body to trace a request;
it comes back in the envelope and in the `X-Request-Id` header.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logs.setup(settings.log_level, settings.filter_health_access_log)
    shared = workers.shared_dir(settings)
    drain = Drain()
    recycling = bool(settings.worker_max_requests or settings.worker_max_memory_mb)
    recycler = Recycler(max_requests=settings.worker_max_requests,
                        max_memory_mb=settings.worker_max_memory_mb, restart=drain.recycle)

    def pools(board: Board | None) -> dict[str, Pool]:
        """The two pools, their sizes totals for the whole gateway; on a shared board with several workers."""
        sizes = {"inference": settings.max_concurrent_requests,
                 "non-inference": settings.max_concurrent_non_inference_requests}
        queue, wait = settings.max_queued_requests, settings.max_queue_wait
        if board is None:
            return {name: LocalPool(name, slots=n, queue_size=queue, max_wait=wait)
                    for name, n in sizes.items()}
        return {name: SharedPool(name, slots=n, queue_size=queue, max_wait=wait, board=board)
                for name, n in sizes.items()}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        board = Board(shared, on_dead=metrics.worker_exited) if shared is not None else None
        app.state.pools = pools(board)
        triton = TritonClient(settings.triton_url)
        http = httpx.AsyncClient(trust_env=False)
        app.state.triton = triton
        app.state.readiness = health.Readiness(triton, http, settings.vlm_urls, settings.health_check_timeout)
        job_settings = get_job_settings()
        app.state.jobs = (await jobs.start(job_settings, triton=triton, pool=app.state.pools["inference"],
                                           inference_timeout=settings.inference_timeout)
                          if job_settings.enabled else None)
        app.state.image_links = (ImageLinks(job_settings.data_dir, retention=job_settings.retention,
                                            public_url=job_settings.public_url)
                                 if settings.return_img_urls else None)
        if app.state.image_links is not None:
            app.state.image_links.start()
        drain.install(settings.drain_timeout)
        memory_watch = asyncio.create_task(recycler.watch_memory()) if recycling else None
        logger.info("worker %d: %d inference and %d non-inference slots and queues of %d, %s; Triton at %s",
                    os.getpid(), settings.max_concurrent_requests,
                    settings.max_concurrent_non_inference_requests, settings.max_queued_requests,
                    "shared by the gateway's workers" if board else "in this process", settings.triton_url)
        try:
            yield
        finally:
            if memory_watch is not None:
                memory_watch.cancel()
            drain.uninstall()
            if app.state.jobs is not None:
                await app.state.jobs.stop()
            if app.state.image_links is not None:
                await app.state.image_links.stop()
            await triton.close()
            await http.aclose()
            if board is not None:
                board.close()
            metrics.worker_exited()

    # /docs and /redoc load Swagger UI and ReDoc from the gateway itself (the fastapi-offline wheel's copies,
    # under /static-offline-docs), not from a CDN: they work offline, and no request leaves the host.
    app = FastAPIOffline(title="PaddleOCR-VL document parsing", version=__version__, description=DESCRIPTION,
                         lifespan=lifespan, swagger_ui_parameters={"validatorUrl": None})
    app.state.settings = settings
    app.state.drain = drain
    errors.install(app)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_size)
    if settings.rate_limit:
        storage = make_storage(settings.rate_limit_storage, str(shared) if shared else None)
        limiter = RateLimiter(settings.rate_limit, storage,
                              settings.api_keys, settings.trusted_proxies)
        app.add_middleware(RateLimitMiddleware, limiter=limiter, unlimited=webui.is_page)
    app.add_middleware(DrainMiddleware, drain=drain)
    if recycling:
        app.add_middleware(RecycleMiddleware, recycler=recycler, exempt=EXEMPT)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-Id"],
            expose_headers=["X-Request-Id", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining",
                            "RateLimit-Reset"])
    app.add_middleware(ContextMiddleware)

    api_guard = [Depends(require_api_key)] if settings.api_keys else []
    app.include_router(inference.router, dependencies=api_guard)
    app.include_router(job_routes.api, dependencies=api_guard)
    app.include_router(image_routes.router, dependencies=api_guard)
    app.include_router(job_routes.links)
    app.include_router(health.router)
    app.include_router(metrics.router)
    webui.install(app)   # the web page at / (static, no key: it asks the person for one)
    openapi.install(app, [LayoutParsingRequest, RestructurePagesRequest])
    return app

