"""Prometheus metrics, correct with several workers.

With more than one worker, `python -m gateway` puts PROMETHEUS_MULTIPROC_DIR in the environment the workers
start with (see `gateway.workers.prepare`), so prometheus_client keeps every worker's values in files there;
the registry a scrape reads is made on the first scrape, adding up every worker's files. Gauges count live
workers only (`livesum`).
"""

from __future__ import annotations

import os
from functools import cache

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("gateway_requests", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram(
    "gateway_request_duration_seconds", "Time from request to answer", ["route"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf")))
TRITON_LATENCY = Histogram(
    "gateway_triton_duration_seconds", "Time of the Triton call", ["model"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf")))
IN_FLIGHT = Gauge("gateway_requests_in_flight", "Requests holding a concurrency slot", ["pool"],
                  multiprocess_mode="livesum")
QUEUED = Gauge("gateway_requests_queued", "Requests waiting for a concurrency slot", ["pool"],
               multiprocess_mode="livesum")
SLOTS = Gauge("gateway_concurrency_slots", "Concurrency slots of the gateway", ["pool"],
              multiprocess_mode="livemax")
REJECTIONS = Counter("gateway_rejections", "Requests refused before reaching Triton", ["reason"])

ROUTES = frozenset({"/layout-parsing", "/restructure-pages", "/health", "/health/ready", "/metrics",
                    "/docs", "/redoc", "/openapi.json"})


def route_label(path: str) -> str:
    """The path for known routes, `other` for the rest (keeps label cardinality bounded)."""
    return path if path in ROUTES else "other"


def observe(path: str, method: str, status: int, seconds: float) -> None:
    route = route_label(path)
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route).observe(seconds)


def reject(reason: str) -> None:
    REJECTIONS.labels(reason).inc()


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


@cache
def registry() -> CollectorRegistry:
    """What a scrape reads: this process's registry, or the sum of every worker's files."""
    if not _multiprocess():
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
    return combined


def worker_exited(pids: list[int] | None = None) -> None:
    """Drop the live gauges of this worker (or of dead workers `pids`) from the shared files."""
    if _multiprocess():
        for pid in pids or [os.getpid()]:
            multiprocess.mark_process_dead(pid)


router = APIRouter()


@router.get("/metrics", include_in_schema=True, tags=["operations"],
            response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"}})
def metrics() -> Response:
    """Request counts, latency histograms, in-flight and queued requests, and rejections, over all workers."""
    return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)
