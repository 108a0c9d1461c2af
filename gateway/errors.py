"""The one map from failure to HTTP status and `{logId, errorCode, errorMsg}` envelope.

Every part of the gateway raises one of the exceptions below (or lets anything else escape); `to_response`
turns it into the answer, whether it comes from a route, a dependency or a middleware. Unexpected failures
become 500 with the request's logId and no internals: the details go to the log, under the same logId.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contract.envelope import envelope, validation_message
from contract.names import JOB_API_PREFIX
from gateway.context import current_log_id

logger = logging.getLogger("gateway.errors")


class GatewayError(Exception):
    """A failure with a known status. `message` is safe to show to the client."""

    status = 500
    message = "Internal server error"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.headers = headers or {}


class BadRequest(GatewayError):
    status, message = 400, "Request body is not valid JSON"


class Unauthorized(GatewayError):
    status, message = 401, "Missing or invalid API key"


class PayloadTooLarge(GatewayError):
    status, message = 413, "Request body too large"


class ValidationFailed(GatewayError):
    status = 422


class RateLimited(GatewayError):
    status, message = 429, "Too many requests from this client"


class Overloaded(GatewayError):
    """No concurrency slot within the queue's bounds; Retry-After says when one is likely."""

    status, message = 503, "Server busy"


class ShuttingDown(GatewayError):
    status, message = 503, "Gateway is shutting down"


class NotReady(GatewayError):
    status = 503


class TritonUnavailable(GatewayError):
    status, message = 503, "Inference server unavailable"


class BadUpstreamOutput(GatewayError):
    status, message = 502, "Malformed response from the inference server"


class UpstreamTimeout(GatewayError):
    status, message = 504, "Gateway timeout"


class UpstreamFailed(GatewayError):
    """Triton answered with an error of its own (the model raised, say): upstream's 500."""

    status, message = 500, "Internal server error"


class ClientDisconnected(GatewayError):
    """The client went away; nobody reads this answer, but metrics and logs count it (nginx's 499)."""

    status, message = 499, "Client closed request"


def _detail(exc: BaseException) -> tuple[int, str, dict[str, str]]:
    if isinstance(exc, GatewayError):
        return exc.status, exc.message, exc.headers
    if isinstance(exc, RequestValidationError):
        return 422, validation_message(exc.errors()), {}
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code, str(exc.detail), dict(exc.headers or {})
    return 500, GatewayError.message, {}


def to_response(exc: BaseException, path: str = "") -> JSONResponse:
    """The envelope answer for `exc` on `path`; logs what the client is not told. The Job API answers in its
    own envelope, `{code, msg}`, and a request it cannot take is a 400 there (its client knows no 422)."""
    status, message, headers = _detail(exc)
    if status >= 500 and not isinstance(exc, GatewayError | StarletteHTTPException):
        logger.error("unexpected failure", exc_info=exc)
    elif isinstance(exc, UpstreamFailed | BadUpstreamOutput | TritonUnavailable | UpstreamTimeout):
        cause = exc.__cause__
        logger.warning("%s%s", message, f": {cause}" if cause is not None else "")
    if path.startswith(JOB_API_PREFIX):
        status = 400 if status == 422 else status
        body: dict[str, Any] = {"code": status, "msg": message, "logId": current_log_id()}
    else:
        body = envelope(current_log_id(), code=status, msg=message)
    return JSONResponse(body, status_code=status, headers=headers)


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    return to_response(exc, request.url.path)


def install(app: FastAPI) -> None:
    handlers: list[Any] = [GatewayError, RequestValidationError, StarletteHTTPException]
    for exc_class in handlers:
        app.add_exception_handler(exc_class, _handle)
