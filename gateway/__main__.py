"""`python -m gateway`: uvicorn with `UVICORN_WORKERS` workers on `HPS_GATEWAY_HOST:HPS_GATEWAY_PORT`.

The settings are checked here first, so that a bad value stops start-up with one line. What the workers
share is prepared before any of them starts (`gateway.workers.prepare`) and removed at exit. Each worker
builds the app with `gateway.app:create_app`. Uvicorn's own proxy-header handling is off:
`HPS_TRUSTED_PROXIES` decides.
"""

from __future__ import annotations

import math
import sys

import uvicorn

from gateway import logs, workers
from gateway.protocols import NoDelayHTTPProtocol
from gateway.settings import SettingsError, get_settings

STARTUP_FAILURE = 3


def main() -> int:
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return STARTUP_FAILURE
    logs.setup(settings.log_level, settings.filter_health_access_log)
    shared = workers.prepare(settings)
    try:
        uvicorn.run(
            "gateway.app:create_app", factory=True, host=settings.host, port=settings.port,
            workers=settings.workers, loop=settings.loop, http=NoDelayHTTPProtocol, log_config=None,
            proxy_headers=False, server_header=False,
            # On SIGTERM the app drains in-flight requests itself (HPS_DRAIN_TIMEOUT) before uvicorn stops, so
            # uvicorn's own wait is then only for connections to close; a worker that recycles itself skips
            # the drain, and its requests in flight finish within this wait.
            timeout_graceful_shutdown=math.ceil(settings.drain_timeout) + 2)
    finally:
        workers.remove(shared)
    return 0


if __name__ == "__main__":
    sys.exit(main())
