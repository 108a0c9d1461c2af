"""Per-client rate limits (the `limits` library, fixed windows), as a small ASGI middleware.

The client is its API key when keys are configured and it presents a valid one, else its IP address;
X-Forwarded-For is believed only from `HPS_TRUSTED_PROXIES` (the rightmost address that is not a trusted
proxy is the client). Over the limit: 429 with Retry-After; every limited answer carries RateLimit-Limit,
-Remaining and -Reset for the tightest limit. Probes, docs, metrics and the web page are exempt.

Counters must be shared by the workers, or each would allow the full rate: with one worker they live in
memory, with several in a small SQLite file in the workers' shared directory (the `sqlite://` storage below),
and `HPS_RATE_LIMIT_STORAGE` can point all replicas at one `limits` storage such as Redis.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import metrics
from gateway.errors import RateLimited, to_response
from gateway.keys import is_known, presented_key
from gateway.settings import IPNetwork
from gateway.shutdown import EXEMPT


class SQLiteStorage(Storage):
    """Fixed-window counters in one SQLite file, atomic across the processes that open it."""

    STORAGE_SCHEME = ["sqlite"]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: float | str | bool) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = uri.removeprefix("sqlite://")
        self._local = threading.local()
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS counters "
                       "(key TEXT PRIMARY KEY, count INTEGER, expiry REAL)")

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            self._local.db = db
        return db

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        db, now = self._db(), time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT count, expiry FROM counters WHERE key = ?", (key,)).fetchone()
            if row is None or row[1] <= now:
                count = amount
                db.execute("INSERT OR REPLACE INTO counters VALUES (?, ?, ?)", (key, count, now + expiry))
                if row is None and random.random() < 1 / 64:  # now and then, forget finished windows
                    db.execute("DELETE FROM counters WHERE expiry <= ?", (now,))
            else:
                count = row[0] + amount
                db.execute("UPDATE counters SET count = ? WHERE key = ?", (count, key))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return int(count)

    def get(self, key: str) -> int:
        row = self._db().execute("SELECT count FROM counters WHERE key = ? AND expiry > ?",
                                 (key, time.time())).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._db().execute("SELECT expiry FROM counters WHERE key = ?", (key,)).fetchone()
        return float(row[0]) if row and row[0] > time.time() else time.time()

    def check(self) -> bool:
        return self._db().execute("SELECT 1").fetchone() is not None

    def reset(self) -> int | None:
        return self._db().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        self._db().execute("DELETE FROM counters WHERE key = ?", (key,))


def client_ip(scope: Scope, headers: Headers, trusted: Iterable[IPNetwork]) -> str:
    """The peer address, or the client a trusted proxy names in X-Forwarded-For."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    networks = tuple(trusted)

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in networks)

    if not networks or not is_trusted(peer):
        return peer
    hops = [h.strip() for value in headers.getlist("x-forwarded-for") for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else peer


class RateLimiter:
    def __init__(self, spec: str, storage: Storage, api_keys: frozenset[str],
                 trusted_proxies: Iterable[IPNetwork]) -> None:
        self.items: list[RateLimitItem] = parse_many(spec)
        self.limiter = FixedWindowRateLimiter(storage)
        self.api_keys = api_keys
        self.trusted = tuple(trusted_proxies)

    def client(self, scope: Scope, headers: Headers) -> str:
        key = presented_key(headers) if self.api_keys else None
        if key is not None and is_known(key, self.api_keys):
            return "key:" + hashlib.sha256(key.encode()).hexdigest()[:24]
        return "ip:" + client_ip(scope, headers, self.trusted)

    def hit(self, client: str) -> tuple[bool, dict[str, str]]:
        """Count one request; (allowed, RateLimit-* headers of the tightest limit, Retry-After if refused)."""
        results = []
        for item in self.items:
            ok = self.limiter.hit(item, client)
            results.append((ok, self.limiter.get_window_stats(item, client), item))
        refused = [r for r in results if not r[0]]
        allowed = not refused
        _, stats, item = min(refused or results, key=lambda r: r[1].remaining)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        headers = {"RateLimit-Limit": str(item.amount), "RateLimit-Remaining": str(stats.remaining),
                   "RateLimit-Reset": str(reset)}
        if not allowed:
            headers["Retry-After"] = str(max(1, reset))
        return allowed, headers


def make_storage(uri: str, shared_dir: str | None) -> Storage:
    if uri:
        storage = storage_from_string(uri)
        if not isinstance(storage, Storage):
            raise ValueError(f"HPS_RATE_LIMIT_STORAGE={uri!r} is an asyncio storage; use the plain scheme")
        return storage
    if shared_dir:
        return SQLiteStorage(f"sqlite://{shared_dir}/ratelimit.sqlite")
    return MemoryStorage()


class RateLimitMiddleware:
    """`unlimited(path)` names more paths that no limit counts (the web page's static files)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter,
                 unlimited: Callable[[str], bool] = lambda path: False) -> None:
        self.app, self.limiter, self.unlimited = app, limiter, unlimited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] in EXEMPT or scope["method"] == "OPTIONS"
                or self.unlimited(scope["path"])):
            await self.app(scope, receive, send)
            return
        allowed, headers = self.limiter.hit(self.limiter.client(scope, Headers(scope=scope)))
        if not allowed:
            metrics.reject("rate_limited")
            await to_response(RateLimited(headers=headers), scope["path"])(scope, receive, send)
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
