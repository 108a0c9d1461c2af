"""Prometheus metrics, correct with several workers.

With more than one worker, `gateway.workers.prepare_metrics_dir` points PROMETHEUS_MULTIPROC_DIR at a
directory the workers share before this module (and so prometheus_client) is first imported; each scrape then
adds up every worker's files. Gauges count live workers only (`livesum`).
"""

from __future__ import annotations

import os

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

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

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
SLOTS = Gauge("gateway_concurrency_slots", "Concurrency slots", ["pool"], multiprocess_mode="livesum")
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


def worker_exited() -> None:
    """Drop this worker's live gauges from the shared files."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())


router = APIRouter()


@router.get("/metrics", include_in_schema=True, tags=["operations"],
            response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"}})
def metrics() -> Response:
    """Request counts, latency histograms, in-flight and queued requests, and rejections, over all workers."""
    registry = REGISTRY
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
