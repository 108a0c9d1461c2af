"""The current request's logId and start time, reachable from any code (and log line) of that request.

The logId is the client's when it sent one (`logId` in the body, else an `X-Request-Id` header), otherwise a
fresh uuid4. It is a mutable field of one object per request, so that a value found late (in the body) is seen
by the middleware that writes the `X-Request-Id` response header.
"""

from __future__ import annotations

import re
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,200}")


@dataclass
class RequestContext:
    log_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)


_current: ContextVar[RequestContext | None] = ContextVar("gateway_request", default=None)


def begin(client_id: str | None) -> tuple[RequestContext, object]:
    """Start a request's context; `client_id` is an X-Request-Id header, used when it is a sane token."""
    sane = client_id is not None and _HEADER_SAFE.fullmatch(client_id) is not None
    ctx = RequestContext(log_id=client_id) if sane and client_id else RequestContext()
    return ctx, _current.set(ctx)


def end(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def current() -> RequestContext | None:
    return _current.get()


def current_log_id() -> str:
    ctx = _current.get()
    return ctx.log_id if ctx else str(uuid.uuid4())


def header_value(log_id: str) -> str:
    """`log_id` as an HTTP header value (a client's logId may hold characters a header cannot)."""
    if _HEADER_SAFE.fullmatch(log_id):
        return log_id
    return "".join(c if "\x21" <= c <= "\x7e" else "_" for c in log_id)[:200] or "-"
