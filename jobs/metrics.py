"""The Job API's Prometheus metrics, beside the gateway's (the same registry, multi-worker safe)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

JOBS = Gauge("gateway_jobs", "Jobs in the store by state (all replicas)", ["state"],
             multiprocess_mode="livemax")
JOBS_SUBMITTED = Counter("gateway_jobs_submitted", "Jobs accepted")
JOBS_FINISHED = Counter("gateway_jobs_finished", "Jobs this gateway finished, by final state", ["state"])
PAGES_DONE = Counter("gateway_job_pages_done", "Pages of jobs this gateway finished")


def observe_states(counts: dict[str, int]) -> None:
    """Jobs by state, and so the queue depth (`pending`)."""
    for state, count in counts.items():
        JOBS.labels(state).set(count)
