"""Where this process stands among the gateway's workers, so that limits stay totals for the whole gateway.

With W uvicorn workers, worker i (0-based) gets `total // W` slots, plus one if `i < total % W`: the shares
differ by at most one and sum exactly to the configured total. Each worker claims its index by locking
`worker-<i>.lock` in a directory all workers share (the kernel drops the lock when a worker dies, so its
replacement takes the same index). The same directory holds the Prometheus multiprocess files and the rate
limit counters.

A process that multiprocessing did not start (plain `uvicorn gateway.app:app`, or `python -m gateway` with one
worker) is the only worker, whatever `UVICORN_WORKERS` says.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gateway.settings import Settings, SettingsError

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def worker_count(settings: Settings) -> int:
    """How many workers share the limits: the setting, if uvicorn's supervisor started this process."""
    return settings.workers if multiprocessing.parent_process() is not None else 1


def run_dir(settings: Settings) -> Path:
    """The directory the workers share: set by `python -m gateway`, else one per uvicorn supervisor."""
    if settings.run_dir:
        path = Path(settings.run_dir)
    else:
        path = Path(tempfile.gettempdir()) / f"paddleocr-vl-gateway-{os.getppid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare_metrics_dir(settings: Settings) -> Path | None:
    """Prometheus multiprocess mode for several workers; must run before prometheus_client is imported."""
    if worker_count(settings) == 1:
        return None
    if not os.environ.get(METRICS_ENV):
        os.environ[METRICS_ENV] = str(run_dir(settings) / "metrics")
    path = Path(os.environ[METRICS_ENV])
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_totals(settings: Settings, count: int) -> None:
    """Every worker needs at least one slot of each kind."""
    totals = {"HPS_MAX_CONCURRENT_REQUESTS": settings.max_concurrent_requests,
              "HPS_MAX_CONCURRENT_NON_INFERENCE_REQUESTS": settings.max_concurrent_non_inference_requests}
    for name, total in totals.items():
        if total < count:
            raise SettingsError(
                f"invalid setting {name}={total}: must be at least the number of workers ({count})")


def share(total: int, workers: int, index: int) -> int:
    """This worker's part of `total`: floor or ceiling of total/workers, the parts summing to `total`."""
    return total // workers + (1 if index < total % workers else 0)


@dataclass
class WorkerSlot:
    """This process's index among `count` workers, held for its lifetime."""

    index: int
    count: int
    _fd: int | None = None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def share(self, total: int) -> int:
        return share(total, self.count, self.index)


def claim(settings: Settings) -> WorkerSlot:
    """Take the lowest free worker index (0 of 1 when this process is the only worker)."""
    count = worker_count(settings)
    if count == 1:
        return WorkerSlot(0, 1)
    directory = run_dir(settings)
    for index in range(count):
        fd = os.open(directory / f"worker-{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return WorkerSlot(index, count, fd)
    raise RuntimeError(
        f"more gateway workers than UVICORN_WORKERS={count}: set it to the number of workers uvicorn starts")
