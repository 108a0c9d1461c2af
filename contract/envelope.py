"""The `{logId, errorCode, errorMsg[, result]}` envelope, the 422 message format, and JSON as on the wire."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError


def envelope(
    log_id: str, result: Any | None = None, *, code: int = 0, msg: str = "Success"
) -> dict[str, Any]:
    """The response envelope as a plain dict; `result` is left out when None (as upstream exclude_none)."""
    body: dict[str, Any] = {"logId": log_id, "errorCode": code, "errorMsg": msg}
    if result is not None:
        body["result"] = result
    return body


def markdown_json(text: str, images: dict[str, str] | None) -> dict[str, Any]:
    """A page's `markdown`; `images` is left out when None, as upstream dumps with exclude_none."""
    return {"text": text} if images is None else {"text": text, "images": images}


def validation_message(errors: ValidationError | Iterable[Mapping[str, Any]]) -> str:
    """One readable line naming each bad field by its wire name, as `errorMsg` of a 422."""
    if isinstance(errors, ValidationError):
        errors = errors.errors(include_url=False, include_context=False, include_input=False)
    issues = [{"type": e["type"], "loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in errors]
    return json.dumps(issues, ensure_ascii=False)


def client_log_id(body: Any) -> str | None:
    """The client's own `logId` when the body is a JSON object carrying a non-empty string one."""
    if isinstance(body, dict) and isinstance(body.get("logId"), str) and body["logId"]:
        return str(body["logId"])
    return None


def dumps(body: Any) -> bytes:
    """Compact JSON as on the Triton wire (separators without spaces)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
