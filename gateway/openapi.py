"""What the OpenAPI document says about answers and request bodies, so that Swagger tells the whole truth.

Every status the gateway can send is declared with the envelope model and the headers that come with it. The
request bodies are the `contract.models` models; the routes read and validate the body themselves (to
answer 400/422 precisely, validate before taking a slot and forward unknown fields untouched), so the models
are put into the document here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from contract.models import ErrorEnvelope
from contract.names import JOB_API_PREFIX

_INT = {"type": "integer"}
REQUEST_ID: dict[str, Any] = {"X-Request-Id": {
    "description": "The request's logId (also in the envelope and every log line)",
    "required": True, "schema": {"type": "string"}}}
RETRY_AFTER: dict[str, Any] = {"Retry-After": {
    "description": "Seconds after which a retry is likely to be admitted", "schema": _INT}}
RATE_LIMIT: dict[str, Any] = {
    "RateLimit-Limit": {"description": "Requests allowed per window for this client", "schema": _INT},
    "RateLimit-Remaining": {"description": "Requests left in the current window", "schema": _INT},
    "RateLimit-Reset": {"description": "Seconds until the window resets", "schema": _INT},
}

_WHY = {
    400: "The body is not valid JSON (or not UTF-8), or Content-Length is malformed.",
    401: "API keys are configured and the request has no valid one (`Authorization: Bearer` or `X-API-Key`).",
    413: "The body is larger than `HPS_MAX_BODY_SIZE`.",
    422: "The request does not validate (`errorMsg` lists each bad field), or its body is declared as "
         "something other than JSON. Also the model's own 422s.",
    429: "This client is over `HPS_RATE_LIMIT`.",
    500: "Unexpected failure (in the gateway or the model); `logId` finds it in the logs.",
    502: "Triton answered with something that is not a response envelope.",
    503: "Triton is unreachable, every slot and the queue are busy (Retry-After), or the gateway is "
         "shutting down; for readiness: what is not ready.",
    504: "`HPS_INFERENCE_TIMEOUT` passed; the Triton call was cancelled.",
}


def _headers(status: int, limited: bool) -> dict[str, Any]:
    headers: dict[str, Any] = dict(REQUEST_ID)
    if status in (429, 503):
        headers |= RETRY_AFTER
    if limited:
        headers |= RATE_LIMIT
    return headers


def error_responses(*statuses: int, limited: bool = False) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` for these error statuses; `limited`: the route is rate limited."""
    return {code: {"model": ErrorEnvelope, "description": _WHY[code], "headers": _headers(code, limited)}
            for code in statuses}


def success_headers(limited: bool) -> dict[str, Any]:
    return _headers(200, limited)


def json_body(model: type[BaseModel], example: dict[str, Any] | None = None) -> dict[str, Any]:
    """`openapi_extra` declaring `model` as the required JSON body."""
    media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    if example is not None:
        media["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": media}}}


def install(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Generate the document once, with the request models (and the models they use) among its schemas."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description,
                              routes=app.routes, tags=app.openapi_tags)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            for path, operations in doc["paths"].items():
                if path.startswith(JOB_API_PREFIX):   # the Job API answers a failed validation with a 400
                    for operation in operations.values():
                        operation["responses"].pop("422", None)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
