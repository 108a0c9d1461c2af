"""`python -m gateway`: uvicorn with `UVICORN_WORKERS` workers on `HPS_GATEWAY_HOST:HPS_GATEWAY_PORT`.

Settings are checked here first, so that a bad value stops start-up with one line. With several workers a
fresh directory is made for them to share (worker indexes, Prometheus multiprocess files, rate-limit
counters) and removed at exit. Uvicorn's own proxy-header handling is off: `HPS_TRUSTED_PROXIES` decides.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import uvicorn

from gateway import logs
from gateway.settings import SettingsError, get_settings
from gateway.workers import METRICS_ENV, check_totals

STARTUP_FAILURE = 3


def main() -> int:
    try:
        settings = get_settings()
        check_totals(settings, settings.workers)
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return STARTUP_FAILURE
    logs.setup(settings.log_level, settings.filter_health_access_log)
    shared = None
    if settings.workers > 1:
        shared = tempfile.mkdtemp(prefix="paddleocr-vl-gateway-")
        os.environ["HPS_GATEWAY_RUN_DIR"] = shared
        os.environ.setdefault(METRICS_ENV, os.path.join(shared, "metrics"))
        os.makedirs(os.environ[METRICS_ENV], exist_ok=True)
    try:
        uvicorn.run(
            "gateway.app:app", host=settings.host, port=settings.port, workers=settings.workers,
            log_config=None, proxy_headers=False, server_header=False,
            # The app drains in-flight requests itself on SIGTERM (HPS_DRAIN_TIMEOUT) before uvicorn stops,
            # so uvicorn's own wait is only for connections to close.
            timeout_graceful_shutdown=2)
    finally:
        if shared:
            shutil.rmtree(shared, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
