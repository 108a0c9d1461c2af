"""The job stores, SQLite and Redis, through the same tests: limits, idempotency, claims and leases, pages
finished once, cancellation, expiry and the shared secret."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from jobs.protocol import CANCELLED, DONE, FAILED, PENDING, RUNNING
from jobs.store import Job, JobStore, Limits, QueueFull, QuotaExceeded

ROOMY = Limits(queue_size=100, key_quota=100)


def job(owner: str = "alice", created: float = 100.0, **fields: object) -> Job:
    return Job(id=uuid.uuid4().hex, owner=owner, model="PaddleOCR-VL-1.6", options={"visualize": False},
               created_at=created, expires_at=created + 1000, **fields)  # type: ignore[arg-type]


async def test_a_job_round_trips(store: JobStore) -> None:
    submitted = job(page_ranges="2,4-6", batch_id="b1", file_name="report.pdf")
    assert await store.create(submitted, ROOMY) == submitted
    assert await store.get(submitted.id) == submitted
    assert await store.get("nothing") is None


async def test_the_queue_and_the_owners_quota_bound_submissions(store: JobStore) -> None:
    for n in range(2):
        await store.create(job("alice", created=n), Limits(queue_size=3, key_quota=2))
    with pytest.raises(QuotaExceeded):
        await store.create(job("alice"), Limits(queue_size=3, key_quota=2))
    await store.create(job("bob"), Limits(queue_size=3, key_quota=2))
    with pytest.raises(QueueFull):
        await store.create(job("carol"), Limits(queue_size=3, key_quota=2))
    assert (await store.counts())[PENDING] == 3


async def test_the_same_idempotency_returns_the_job_already_stored(store: JobStore) -> None:
    first = await store.create(job(idempotency="key-1:abc"), ROOMY)
    again = await store.create(job(idempotency="key-1:abc"), ROOMY)
    other_owner = await store.create(job("bob", idempotency="key-1:abc"), ROOMY)
    assert again.id == first.id and other_owner.id != first.id
    assert (await store.counts())[PENDING] == 2


async def test_claims_take_the_oldest_pending_job_and_a_lapsed_lease(store: JobStore) -> None:
    older, newer = job(created=1.0), job(created=2.0)
    await store.create(newer, ROOMY)
    await store.create(older, ROOMY)
    first = await store.claim("runner-a", now=10.0, lease=5.0)
    assert first is not None and first.id == older.id
    assert (first.state, first.runner, first.lease_until) == (RUNNING, "runner-a", 15.0)
    assert first.start_time == 10.0
    second = await store.claim("runner-b", now=11.0, lease=5.0)
    assert second is not None and second.id == newer.id
    assert await store.claim("runner-c", now=12.0, lease=5.0) is None        # both held
    assert await store.renew(older.id, "runner-a", now=14.0, lease=5.0) is not None
    assert await store.renew(older.id, "runner-b", now=14.0, lease=5.0) is None   # not b's
    taken = await store.claim("runner-c", now=17.0, lease=5.0)               # b's lease lapsed at 16
    assert taken is not None and (taken.id, taken.runner, taken.start_time) == (newer.id, "runner-c", 11.0)
    assert await store.renew(newer.id, "runner-b", now=17.5, lease=5.0) is None   # b lost it


async def test_pages_count_once_whoever_finishes_them(store: JobStore) -> None:
    submitted = await store.create(job(), ROOMY)
    await store.set_total(submitted.id, 5)
    counts = await asyncio.gather(*[store.page_done(submitted.id, i) for i in (0, 3, 3, 1)])
    assert sorted(counts)[-1] == 3
    assert await store.pages_done(submitted.id) == {0, 1, 3}
    found = await store.get(submitted.id)
    assert found is not None and (found.total_pages, found.extracted_pages) == (5, 3)


async def test_only_the_holder_finishes_a_job_and_only_once(store: JobStore) -> None:
    submitted = await store.create(job(), ROOMY)
    await store.claim("runner-a", now=10.0, lease=5.0)
    assert not await store.finish(submitted.id, "runner-b", DONE, None, now=12.0, expires_at=99.0)
    assert await store.finish(submitted.id, "runner-a", DONE, None, now=12.0, expires_at=99.0)
    assert not await store.finish(submitted.id, "runner-a", FAILED, "late", now=13.0, expires_at=99.0)
    found = await store.get(submitted.id)
    assert found is not None and (found.state, found.end_time, found.expires_at) == (DONE, 12.0, 99.0)
    assert (await store.counts())[DONE] == 1
    await store.create(job("alice"), Limits(queue_size=1, key_quota=1))   # no longer counts for the quota


async def test_a_cancelled_job_fails_and_tells_its_runner(store: JobStore) -> None:
    submitted = await store.create(job(), ROOMY)
    await store.claim("runner-a", now=10.0, lease=5.0)
    cancelled = await store.cancel(submitted.id, now=11.0, expires_at=50.0)
    assert cancelled is not None
    assert (cancelled.state, cancelled.error_msg, cancelled.cancel_requested) == (FAILED, CANCELLED, True)
    renewed = await store.renew(submitted.id, "runner-a", now=12.0, lease=5.0)
    assert renewed is not None and renewed.cancel_requested          # the runner learns it must stop
    assert not await store.finish(submitted.id, "runner-a", DONE, None, now=13.0, expires_at=99.0)
    assert await store.claim("runner-b", now=30.0, lease=5.0) is None   # nobody works on it again
    again = await store.cancel(submitted.id, now=14.0, expires_at=60.0)
    assert again is not None and again.end_time == 11.0                  # cancelling twice changes nothing


async def test_ended_jobs_expire_with_their_pages_and_unfinished_ones_never(store: JobStore) -> None:
    waiting, keep, drop = (job(created=0.0, batch_id="b"), job(created=0.1, batch_id="b"),
                           job(created=0.2, batch_id="b", idempotency="k:1"))
    waiting.expires_at = 10.0   # its retention counts from its end: a queue longer than it loses nothing
    for submitted in (waiting, keep, drop):
        await store.create(submitted, ROOMY)
    await store.page_done(drop.id, 0)
    await store.cancel(keep.id, now=1.0, expires_at=500.0)
    await store.cancel(drop.id, now=1.0, expires_at=50.0)
    assert await store.expired(now=60.0) == [drop.id]
    await store.delete(drop.id)
    assert await store.get(drop.id) is None and await store.pages_done(drop.id) == set()
    assert [j.id for j in await store.batch("alice", "b")] == [waiting.id, keep.id]
    assert (await store.create(job(idempotency="k:1"), ROOMY)).id != drop.id   # the key is free again


async def test_a_batch_lists_its_owners_jobs_oldest_first(store: JobStore) -> None:
    jobs = [job(created=float(n), batch_id="nightly") for n in (3, 1, 2)]
    for submitted in jobs:
        await store.create(submitted, ROOMY)
    await store.create(job("bob", batch_id="nightly"), ROOMY)
    listed = await store.batch("alice", "nightly")
    assert [j.created_at for j in listed] == [1.0, 2.0, 3.0]


async def test_the_first_secret_stored_is_everyones(store: JobStore) -> None:
    assert await store.secret(b"first") == b"first"
    assert await store.secret(b"second") == b"first"
