"""API keys: which one a request presents (`Authorization: Bearer` or `X-API-Key`), and whether it is known.

One place for both, used by the key check of the routes and by the rate limit, which counts a client by its
key. Keys are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key in `Authorization: Bearer <key>`, else in `X-API-Key`; None when neither carries one."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


def is_known(key: str | None, keys: Iterable[str]) -> bool:
    return key is not None and any(hmac.compare_digest(key.encode(), known.encode()) for known in keys)
