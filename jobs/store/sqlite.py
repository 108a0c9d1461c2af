"""Jobs in one SQLite file: the embedded store, shared by every worker of a host (WAL, one writer at a time).

Each operation is one transaction (BEGIN IMMEDIATE takes the write lock first, so a check and the write that
follows it cannot interleave with another worker's). The calls run in a worker thread: the file is local and
quick, but never on the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from jobs.protocol import CANCELLED, DONE, FAILED, PENDING, RUNNING, STATES
from jobs.store.base import Job, JobStore, Limits, QueueFull, QuotaExceeded

T = TypeVar("T")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL,
    lease_until REAL NOT NULL, expires_at REAL NOT NULL, batch_id TEXT, idempotency TEXT,
    record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_at);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, state);
CREATE INDEX IF NOT EXISTS jobs_expiry ON jobs (expires_at);
CREATE TABLE IF NOT EXISTS pages (job_id TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (job_id, idx));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class SQLiteStore(JobStore):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")   # a power cut may lose the last commits, not the file
        self._lock = threading.Lock()
        self._db.executescript(_SCHEMA)   # each statement idempotent; executescript commits on its own

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    async def _run(self, work: Callable[[], T]) -> T:
        def locked() -> T:
            with self._lock:
                return work()
        return await asyncio.to_thread(locked)

    def _load(self, job_id: str) -> Job | None:
        row = self._db.execute("SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_json(row[0]) if row else None

    def _save(self, job: Job) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO jobs (id, owner, state, created_at, lease_until, expires_at, batch_id, "
            "idempotency, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job.id, job.owner, job.state, job.created_at, job.lease_until, job.expires_at, job.batch_id,
             job.idempotency, job.to_json()))

    async def create(self, job: Job, limits: Limits) -> Job:
        def work() -> Job:
            with self._write() as db:
                if job.idempotency is not None:
                    row = db.execute("SELECT id FROM jobs WHERE owner = ? AND idempotency = ?",
                                     (job.owner, job.idempotency)).fetchone()
                    if row:
                        found = self._load(row[0])
                        assert found is not None
                        return found
                (waiting,) = db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (PENDING,)).fetchone()
                if waiting >= limits.queue_size:
                    raise QueueFull()
                (active,) = db.execute("SELECT COUNT(*) FROM jobs WHERE owner = ? AND state IN (?, ?)",
                                       (job.owner, PENDING, RUNNING)).fetchone()
                if active >= limits.key_quota:
                    raise QuotaExceeded()
                self._save(job)
                return job
        return await self._run(work)

    async def get(self, job_id: str) -> Job | None:
        return await self._run(lambda: self._load(job_id))

    async def batch(self, owner: str, batch_id: str) -> list[Job]:
        def work() -> list[Job]:
            rows = self._db.execute("SELECT record FROM jobs WHERE owner = ? AND batch_id = ? ORDER BY "
                                    "created_at", (owner, batch_id)).fetchall()
            return [Job.from_json(r[0]) for r in rows]
        return await self._run(work)

    async def claim(self, runner: str, now: float, lease: float) -> Job | None:
        def work() -> Job | None:
            with self._write() as db:
                row = db.execute(
                    "SELECT id FROM jobs WHERE state = ? OR (state = ? AND lease_until < ?) "
                    "ORDER BY state = ?, created_at LIMIT 1", (PENDING, RUNNING, now, RUNNING)).fetchone()
                if row is None:
                    return None
                job = self._load(row[0])
                assert job is not None
                claimed = job.copy(state=RUNNING, runner=runner, lease_until=now + lease,
                                   start_time=job.start_time or now)
                self._save(claimed)
                return claimed
        return await self._run(work)

    async def renew(self, job_id: str, runner: str, now: float, lease: float) -> Job | None:
        def work() -> Job | None:
            with self._write():
                job = self._load(job_id)
                if job is None or job.runner != runner or job.state != RUNNING:
                    return job if job is not None and job.cancel_requested else None
                renewed = job.copy(lease_until=now + lease)
                self._save(renewed)
                return renewed
        return await self._run(work)

    async def set_total(self, job_id: str, total: int) -> None:
        await self._update(job_id, lambda job: job.copy(total_pages=total))

    async def _update(self, job_id: str, change: Callable[[Job], Job | None]) -> Job | None:
        def work() -> Job | None:
            with self._write():
                job = self._load(job_id)
                changed = change(job) if job is not None else None
                if changed is not None:
                    self._save(changed)
                return changed
        return await self._run(work)

    async def page_done(self, job_id: str, index: int) -> int:
        def work() -> int:
            with self._write() as db:
                db.execute("INSERT OR IGNORE INTO pages (job_id, idx) VALUES (?, ?)", (job_id, index))
                (done,) = db.execute("SELECT COUNT(*) FROM pages WHERE job_id = ?", (job_id,)).fetchone()
                job = self._load(job_id)
                if job is not None:
                    self._save(job.copy(extracted_pages=done))
                return int(done)
        return await self._run(work)

    async def pages_done(self, job_id: str) -> set[int]:
        def work() -> set[int]:
            return {r[0] for r in self._db.execute("SELECT idx FROM pages WHERE job_id = ?", (job_id,))}
        return await self._run(work)

    async def finish(self, job_id: str, runner: str, state: str, error: str | None, now: float,
                     expires_at: float) -> bool:
        def change(job: Job) -> Job | None:
            if job.runner != runner or job.finished:
                return None
            return job.copy(state=state, error_msg=error, end_time=now, expires_at=expires_at, runner=None)
        return await self._update(job_id, change) is not None

    async def cancel(self, job_id: str, now: float, expires_at: float) -> Job | None:
        def work() -> Job | None:
            with self._write():
                job = self._load(job_id)
                if job is None or job.finished:
                    return job
                cancelled = job.copy(state=FAILED, error_msg=CANCELLED, end_time=now, expires_at=expires_at,
                                     cancel_requested=True)
                self._save(cancelled)
                return cancelled
        return await self._run(work)

    async def expired(self, now: float) -> list[str]:
        def work() -> list[str]:
            query = "SELECT id FROM jobs WHERE expires_at <= ? AND state IN (?, ?)"
            return [r[0] for r in self._db.execute(query, (now, DONE, FAILED))]
        return await self._run(work)

    async def delete(self, job_id: str) -> None:
        def work() -> None:
            with self._write() as db:
                db.execute("DELETE FROM pages WHERE job_id = ?", (job_id,))
                db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        await self._run(work)

    async def counts(self) -> dict[str, int]:
        def work() -> dict[str, int]:
            found = dict(self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
            return {state: int(found.get(state, 0)) for state in STATES}
        return await self._run(work)

    async def secret(self, proposed: bytes) -> bytes:
        def work() -> bytes:
            with self._write() as db:
                db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('url_secret', ?)", (proposed,))
                return bytes(db.execute("SELECT value FROM meta WHERE key = 'url_secret'").fetchone()[0])
        return await self._run(work)

    async def close(self) -> None:
        await self._run(self._db.close)

