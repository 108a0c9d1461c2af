"""FastAPI dependencies: the lifespan's objects, the API key check and the JSON body check.

The body is read and checked here, in this order: a content type that is JSON or none at all (else 422, as
FastAPI answers the official gateway's `body: dict`), UTF-8 JSON without NaN/Infinity (400), the
`contract.models` model (422, naming each bad field). What goes on to Triton is the client's own
bytes, untouched (unknown fields included, so that newer clients keep working); the logId travels beside
them as the Triton request id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from contract.envelope import client_log_id, validation_message
from gateway import context
from gateway.admission import Pool
from gateway.errors import BadRequest, Unauthorized, ValidationFailed
from gateway.keys import is_known, presented_key
from gateway.settings import Settings
from gateway.triton import TritonClient

_OFF_LOOP = 1024 * 1024  # bodies above this are parsed in a thread, so that probes are not held up


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_triton(request: Request) -> TritonClient:
    return request.app.state.triton  # type: ignore[no-any-return]


def get_pools(request: Request) -> dict[str, Pool]:
    return request.app.state.pools  # type: ignore[no-any-return]


_bearer = HTTPBearer(auto_error=False, description="An API key from HPS_API_KEYS")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key from HPS_API_KEYS")


async def require_api_key(
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    _documents_bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _documents_header: Annotated[str | None, Depends(_api_key)],
) -> None:
    """401 unless the request shows one of HPS_API_KEYS (only used when keys are configured). The two
    security dependencies declare both ways of sending a key in the OpenAPI document."""
    if not is_known(presented_key(request.headers), settings.api_keys):
        raise Unauthorized(headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True)
class ForwardedBody:
    payload: bytes  # what Triton gets
    log_id: str


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _check(raw: bytes, model: type[BaseModel], ctx: context.RequestContext) -> ForwardedBody:
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}") from None
    log_id = client_log_id(data)
    if log_id is not None:
        ctx.log_id = log_id  # the client's id, from here on (errors below included)
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(validation_message(exc)) from None
    return ForwardedBody(raw, ctx.log_id)


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _check_content_type(content_type: str | None) -> None:
    """A body without a Content-Type is read as JSON (`requests.post(url, data=json.dumps(body))` sends none);
    one declared as something else is refused with 422, the status the official gateway answers it with."""
    media = _media_type(content_type or "")
    if media and not _is_json(media):
        raise ValidationFailed(f"body: the request body is declared as {media!r}; send JSON "
                               "(Content-Type: application/json, or no Content-Type)")


def json_body(model: type[BaseModel]) -> Callable[[Request], Awaitable[ForwardedBody]]:
    """A dependency that reads, checks and prepares a body of `model`."""

    async def read(request: Request) -> ForwardedBody:
        _check_content_type(request.headers.get("content-type"))
        raw = await request.body()
        ctx = context.current() or context.RequestContext()
        if len(raw) > _OFF_LOOP:
            return await asyncio.to_thread(_check, raw, model, ctx)
        return _check(raw, model, ctx)

    return read
