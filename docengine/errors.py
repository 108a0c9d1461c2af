"""Engine failures that belong to one request. Each carries the HTTP status its envelope gets."""

from __future__ import annotations


class EngineError(Exception):
    """A failure of one request; `status` becomes both `errorCode` and the HTTP status."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidInputError(EngineError):
    """The request's file or parameters cannot be processed (422)."""

    status = 422


class VLMUnavailableError(EngineError):
    """The VLM server failed or could not be reached for this request (503)."""

    status = 503


class VLMBadResponseError(EngineError):
    """The VLM server answered, but with something that is not a usable completion (502)."""

    status = 502


class CancelledRequestError(EngineError):
    """The client went away or its deadline passed; its remaining work was dropped (499 stays in Triton)."""

    status = 499
