"""The engine's own figures as Triton custom metrics, on Triton's metrics port beside Triton's own.

Triton's metrics count what Triton sees: requests, queue time, batches. Behind each request the engine runs
layout pages and many VLM calls; these metrics say how many, how many are retried or fail, and how many wait
right now, which is what to watch when the VLM is the bottleneck. A thread reads `read()` (the engine's
`stats`) every `period` seconds: names ending in `_total` are counters, the others gauges, all prefixed
`hps_engine_`. The Triton utilities module is passed in, so this file imports nothing from Triton.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "hps_engine_"
DESCRIPTIONS = {
    "layout_batches_total": "Layout-model batches run",
    "layout_pages_total": "Pages through the layout model",
    "vlm_calls_total": "HTTP calls to the VLM server(s), retries included",
    "vlm_retries_total": "VLM calls tried again (connection errors, 429, 503)",
    "vlm_failures_total": "VLM calls that failed for good",
    "vlm_in_flight": "VLM calls holding a slot now",
    "vlm_queued": "VLM calls waiting for a slot now",
    "vlm_requests": "Requests with VLM calls queued or in flight now",
}


class MetricsExporter:
    def __init__(self, pb_utils: Any, read: Callable[[], dict[str, int]], labels: dict[str, str], *,
                 period: float = 1.0) -> None:
        self._read = read
        self._period = period
        self._families: list[Any] = []   # a family must outlive its metrics
        self._metrics: dict[str, Any] = {}
        self._last: dict[str, int] = {}
        for name, description in DESCRIPTIONS.items():
            kind = pb_utils.MetricFamily.COUNTER if name.endswith("_total") else pb_utils.MetricFamily.GAUGE
            family = pb_utils.MetricFamily(name=PREFIX + name, description=description, kind=kind)
            self._families.append(family)
            self._metrics[name] = family.Metric(labels=labels)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engine-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.export()

    def export(self) -> None:
        for name, value in self._read().items():
            metric = self._metrics.get(name)
            if metric is None:
                continue
            if name.endswith("_total"):
                metric.increment(max(0, value - self._last.get(name, 0)))
                self._last[name] = value
            else:
                metric.set(value)

    def _run(self) -> None:
        failed = False
        while not self._stop.wait(self._period):
            try:
                self.export()
            except Exception:   # metrics must never take the model down; one report is enough
                if not failed:
                    log.exception("could not export the engine's metrics")
                failed = True
