"""Logging: every line of a request carries its logId; successful health-probe access lines can be dropped.

One handler on stderr for the gateway's and uvicorn's loggers, so that the format is the same whether the
gateway runs as `python -m gateway` or under the `uvicorn` command (whose own handlers are replaced).
"""

from __future__ import annotations

import logging
import sys

from gateway.context import current

FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s [%(log_id)s] %(message)s"
PROBES = ("/health", "/health/ready")


class LogIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = current()
        record.log_id = ctx.log_id if ctx else "-"
        return True


class HealthProbeFilter(logging.Filter):
    """Drops uvicorn access lines of answered probes (failures still show)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 5:
            path, status = str(args[2]).split("?", 1)[0], args[4]
            if path in PROBES and isinstance(status, int) and status < 400:
                return False
        return True


def setup(level: str, filter_health: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(LogIdFilter())
    for name in ("gateway", "uvicorn", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False
    error = logging.getLogger("uvicorn.error")  # into "uvicorn"'s handler
    error.handlers, error.propagate = [], True
    error.setLevel(logging.NOTSET)
    access = logging.getLogger("uvicorn.access")
    access.filters = [HealthProbeFilter()] if filter_health else []
