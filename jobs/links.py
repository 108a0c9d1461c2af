"""Pre-signed result links: fetched without an API key (PaddleOCR's client downloads them with a plain GET),
valid until the job's results expire, and useless for any other path.

A link is `<path>?expires=<unix time>&signature=<HMAC-SHA256 of the path and the expiry>` under a secret that
every replica shares (`HPS_JOB_URL_SECRET`, or one made once and kept in the job store).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from urllib.parse import quote


class LinkSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def signature(self, path: str, expires: int) -> str:
        message = f"{path}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def link(self, base_url: str, path: str, expires_at: float) -> str:
        expires = math.floor(expires_at)
        signature = self.signature(path, expires)
        return f"{base_url.rstrip('/')}{quote(path)}?expires={expires}&signature={signature}"

    def valid(self, path: str, expires: str | None, signature: str | None, now: float) -> bool:
        """Whether the link was signed here for exactly this path and has not expired."""
        if not expires or not signature or not expires.isdigit() or int(expires) < now:
            return False
        return hmac.compare_digest(self.signature(path, int(expires)), signature)
