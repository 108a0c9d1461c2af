"""Where jobs live: SQLite in the data directory by default, Redis (or Valkey) when replicas share them."""

from __future__ import annotations

from pathlib import Path

from jobs.store.base import Job, JobStore, Limits, QueueFull, QuotaExceeded

__all__ = ["Job", "JobStore", "Limits", "QueueFull", "QuotaExceeded", "open_store"]


def open_store(url: str, data_dir: str) -> JobStore:
    """`redis://...` (or `rediss://`, `unix://`): Redis; empty: `jobs.sqlite` in `data_dir`."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from jobs.store.redis import RedisStore

        return RedisStore(url)
    if url:
        raise ValueError(f"HPS_JOB_STORE={url!r}: use redis://host:port/db, or leave it empty for SQLite")
    from jobs.store.sqlite import SQLiteStore

    return SQLiteStore(Path(data_dir) / "jobs.sqlite")
