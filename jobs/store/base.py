"""What a job is in the store, and what every store does with it (SQLite for one host, Redis for replicas).

Every change of a job is one atomic step of the store, so that the workers of a host and the replicas of a
deployment never see half of one: a submission counted against the queue and the key's quota, a claim with
its lease, a page finished (once, whoever finishes it), a cancellation, the end. A runner holds a job by a
lease it renews; a lease that runs out (its runner died) lets another runner claim the job again, and it goes
on from the pages already finished.
"""

from __future__ import annotations

import abc
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from jobs.protocol import DONE, FAILED, PENDING


class QueueFull(Exception):
    """The store holds as many waiting jobs as it may."""


class QuotaExceeded(Exception):
    """This owner has as many unfinished jobs as it may."""


@dataclass
class Job:
    id: str
    owner: str                        # whose it is: the hash of an API key, or "anonymous"
    model: str
    options: dict[str, Any]           # /layout-parsing options for every page
    state: str = PENDING
    page_ranges: str | None = None
    batch_id: str | None = None
    file_url: str | None = None       # where the file is fetched from (None: it was uploaded)
    file_name: str | None = None
    created_at: float = 0.0
    start_time: float | None = None
    end_time: float | None = None
    total_pages: int = 0              # known once a runner has the file
    extracted_pages: int = 0
    error_msg: str | None = None
    expires_at: float = 0.0           # when its results (and then the job) are deleted, once it has ended
    cancel_requested: bool = False
    runner: str | None = None         # who holds the lease, until `lease_until`
    lease_until: float = 0.0
    idempotency: str | None = None    # "<Idempotency-Key>:<fingerprint of file and options>"

    @property
    def finished(self) -> bool:
        return self.state in (DONE, FAILED)

    def to_record(self) -> dict[str, str]:
        """Flat strings, for stores that keep strings (Redis hashes); JSON for what is not a string."""
        return {f.name: json.dumps(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_record(cls, record: dict[str, str]) -> Job:
        names = {f.name for f in fields(cls)}
        return cls(**{k: json.loads(v) for k, v in record.items() if k in names})

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in names})

    def copy(self, **changes: Any) -> Job:
        return Job(**{**asdict(self), **changes})


@dataclass
class Limits:
    queue_size: int                   # pending jobs, over all owners
    key_quota: int                    # pending and running jobs of one owner


class JobStore(abc.ABC):
    """The store's operations; each is atomic."""

    @abc.abstractmethod
    async def create(self, job: Job, limits: Limits) -> Job:
        """Store a new job, or return the job of the same owner and idempotency already stored; raise
        `QueueFull` or `QuotaExceeded` when the limits say no."""

    @abc.abstractmethod
    async def get(self, job_id: str) -> Job | None: ...

    @abc.abstractmethod
    async def batch(self, owner: str, batch_id: str) -> list[Job]:
        """The owner's jobs of a batch, oldest first."""

    @abc.abstractmethod
    async def claim(self, runner: str, now: float, lease: float) -> Job | None:
        """The oldest pending job, else a running one whose lease ran out, now held by `runner`."""

    @abc.abstractmethod
    async def renew(self, job_id: str, runner: str, now: float, lease: float) -> Job | None:
        """Extend `runner`'s lease; None when it no longer holds the job."""

    @abc.abstractmethod
    async def set_total(self, job_id: str, total: int) -> None: ...

    @abc.abstractmethod
    async def page_done(self, job_id: str, index: int) -> int:
        """Count page `index` (0-based, of the job's pages) as finished, once; the pages finished so far."""

    @abc.abstractmethod
    async def pages_done(self, job_id: str) -> set[int]: ...

    @abc.abstractmethod
    async def finish(self, job_id: str, runner: str, state: str, error: str | None, now: float,
                     expires_at: float) -> bool:
        """End the job `runner` holds; False when it no longer holds it (or the job ended already)."""

    @abc.abstractmethod
    async def cancel(self, job_id: str, now: float, expires_at: float) -> Job | None:
        """Fail an unfinished job with `cancelled` and ask its runner to stop; the job as it is now."""

    @abc.abstractmethod
    async def expired(self, now: float) -> list[str]:
        """The finished jobs whose retention has passed (an unfinished job never expires: its clock starts
        when it ends)."""

    @abc.abstractmethod
    async def delete(self, job_id: str) -> None: ...

    @abc.abstractmethod
    async def counts(self) -> dict[str, int]:
        """Jobs by state."""

    @abc.abstractmethod
    async def secret(self, proposed: bytes) -> bytes:
        """The deployment's link-signing secret: the one stored, else `proposed`, stored from now on."""

    async def close(self) -> None:
        return None
