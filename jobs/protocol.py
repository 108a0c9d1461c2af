"""The Job API on the wire, as PaddleOCR's client reads it: `{code, msg, data}`, states, and what a job says.

Success answers carry `code` 0 and their `data`; failures carry the HTTP status as `code` and the reason in
`msg`. The client maps only 400 to an invalid request, so a request the API cannot accept is a 400 here, never
a 422. The submitted `optionalPayload` takes the options of `/layout-parsing`, checked by its model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.envelope import validation_message
from contract.models import LayoutParsingRequest
from contract.page_ranges import PageRangeError, parse_page_ranges

JOBS_PATH = "/api/v2/ocr/jobs"
RESULTS_PATH = "/api/v2/ocr/results"
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATES = (PENDING, RUNNING, DONE, FAILED)
CANCELLED = "cancelled"   # the errorMsg of a job cancelled by its client (its state is `failed`)


class JobRequestError(Exception):
    """A submission the API cannot accept (400), or another refusal with its own status."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.headers = message, status, headers or {}


def answer(data: dict[str, Any]) -> dict[str, Any]:
    return {"code": 0, "msg": "Success", "data": data}


class SubmitByUrl(BaseModel):
    """JSON body of a submission by URL (a file is sent as multipart form fields of the same names)."""

    model_config = ConfigDict(extra="forbid")

    fileUrl: str = Field(description="http(s) URL of the PDF or image")
    model: str = Field(description="the release this deployment serves, e.g. PaddleOCR-VL-1.6")
    optionalPayload: dict[str, Any] = Field(
        default_factory=dict, description="options of /layout-parsing (camelCase), without `file`")
    pageRanges: str | None = Field(None, description='pages to parse, e.g. "2,4-6", counted from 1')
    batchId: str | None = Field(None, description="groups jobs for GET /api/v2/ocr/jobs/batch/{batchId}")


class JobError(BaseModel):
    """A Job API failure: the HTTP status as `code`, the reason in `msg`, the request's `logId`."""

    code: int
    msg: str
    logId: str


_WHY = {
    400: "The submission or a field of it is not valid; `msg` says which.",
    401: "API keys are configured and the request has no valid one (`Authorization: Bearer` or `X-API-Key`).",
    403: "The link was changed, or expired with its job's results.",
    404: "No such job: unknown, expired, or another key's (or the Job API is off).",
    429: "This key has `HPS_JOB_KEY_QUOTA` jobs waiting or running, or is over the rate limit (Retry-After).",
    503: "The job queue is full (Retry-After), or the gateway is shutting down.",
}


def failures(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` of a Job API route."""
    return {code: {"model": JobError, "description": _WHY[code]} for code in statuses}


def submit_body_openapi() -> dict[str, Any]:
    """The submit route's two bodies for the OpenAPI description (the route reads them itself)."""
    form = {"type": "object", "required": ["file", "model"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "the PDF or image"},
        "model": {"type": "string", "description": "the release this deployment serves"},
        "optionalPayload": {"type": "string", "description": "a JSON object of /layout-parsing options"},
        "pageRanges": {"type": "string", "description": 'pages to parse, e.g. "2,4-6"'},
        "batchId": {"type": "string"}}}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": SubmitByUrl.model_json_schema()},
        "multipart/form-data": {"schema": form}}}}


@dataclass(frozen=True)
class Submission:
    """A checked submission: the options as /layout-parsing takes them, and where the file comes from."""

    model: str
    options: dict[str, Any]
    page_ranges: str | None
    batch_id: str | None
    file_url: str | None = None


def check_submission(model: str, payload: Any, page_ranges: str | None, batch_id: str | None,
                     served: str, file_url: str | None = None) -> Submission:
    """The submission's parts, checked; `JobRequestError` (400) names the first problem."""
    if model != served:
        raise JobRequestError(f"model {model!r} is not served here; this deployment serves {served!r}")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload) if payload.strip() else {}
        except ValueError as exc:
            raise JobRequestError(f"optionalPayload is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise JobRequestError("optionalPayload must be a JSON object of /layout-parsing options")
    for key in ("file", "pageRanges"):
        if key in payload:
            where = "the submitted file" if key == "file" else "the job's own pageRanges field"
            raise JobRequestError(f"optionalPayload must not carry {key!r}: use {where}")
    try:
        LayoutParsingRequest.model_validate({"file": "-", **payload})
    except ValidationError as exc:
        raise JobRequestError(f"optionalPayload is not valid: {validation_message(exc)}") from None
    if page_ranges is not None:
        try:
            parse_page_ranges(page_ranges)
        except PageRangeError as exc:
            raise JobRequestError(str(exc)) from None
    if batch_id is not None and not 0 < len(batch_id) <= 128:
        raise JobRequestError("batchId must be 1 to 128 characters")
    if file_url is not None and not file_url.lower().startswith(("http://", "https://")):
        raise JobRequestError("fileUrl must be an http(s) URL")
    return Submission(model, payload, page_ranges or None, batch_id, file_url)


def iso(seconds: float | None) -> str | None:
    """A time as the client shows it: ISO 8601 in UTC."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
