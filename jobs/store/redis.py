"""Jobs in Redis (or Valkey): the store several gateway replicas share.

A job is a hash of JSON values; sorted sets index the pending jobs (by age), the running ones (by the end of
their lease), the expiry of every job and a batch's jobs; a set per owner holds its unfinished jobs, one per
job its finished pages. Each operation that checks and then writes is one Lua script, so it is atomic across
replicas.
"""

from __future__ import annotations

import json

import redis.asyncio as redis

from jobs.protocol import CANCELLED, DONE, FAILED, PENDING, RUNNING, STATES
from jobs.store.base import Job, JobStore, Limits, QueueFull, QuotaExceeded

P = "hps:"
PENDING_KEY, RUNNING_KEY, EXPIRY_KEY = P + "pending", P + "running", P + "expiry"
FINISHED_KEYS = {DONE: P + "done", FAILED: P + "failed"}

_CREATE = """
local job, pending, owner_set, idem, batch, expiry = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, created, expires, queue_size, quota = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5])
if idem ~= '' then
  local found = redis.call('GET', idem)
  if found then return {'FOUND', found} end
end
if redis.call('ZCARD', pending) >= queue_size then return {'QUEUE'} end
if redis.call('SCARD', owner_set) >= quota then return {'QUOTA'} end
for i = 6, #ARGV, 2 do redis.call('HSET', job, ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', pending, created, id)
redis.call('SADD', owner_set, id)
if idem ~= '' then redis.call('SET', idem, id) end
if batch ~= '' then redis.call('ZADD', batch, created, id) end
return {'OK', id}
"""

_CLAIM = """
local pending, running, prefix = KEYS[1], KEYS[2], ARGV[1]
local now, until_, runner = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local id = redis.call('ZRANGE', pending, 0, 0)[1]
if not id then id = redis.call('ZRANGEBYSCORE', running, '-inf', '(' .. now, 'LIMIT', 0, 1)[1] end
if not id then return nil end
local job = prefix .. 'job:' .. id
redis.call('ZREM', pending, id)
redis.call('ZADD', running, until_, id)
redis.call('HSET', job, 'state', ARGV[5], 'runner', runner, 'lease_until', ARGV[3])
if redis.call('HGET', job, 'start_time') == 'null' then redis.call('HSET', job, 'start_time', ARGV[2]) end
return id
"""

_RENEW = """
local job, running = KEYS[1], KEYS[2]
if redis.call('HGET', job, 'runner') ~= ARGV[1] or redis.call('HGET', job, 'state') ~= ARGV[3] then
  return 0
end
redis.call('HSET', job, 'lease_until', ARGV[2])
redis.call('ZADD', running, tonumber(ARGV[2]), ARGV[4])
return 1
"""

_PAGE_DONE = """
redis.call('SADD', KEYS[2], ARGV[1])
local done = redis.call('SCARD', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'extracted_pages', done) end
return done
"""

# KEYS: job, pending, running, owner set, finished set (failed or done), expiry.
# ARGV: id, runner ('' for a cancellation), state, error, end time, expires, cancel_requested.
_END = """
local job = KEYS[1]
if redis.call('EXISTS', job) == 0 then return 0 end
local state = redis.call('HGET', job, 'state')
if state == ARGV[8] or state == ARGV[9] then return 0 end
if ARGV[2] ~= '' and redis.call('HGET', job, 'runner') ~= ARGV[2] then return 0 end
redis.call('HSET', job, 'state', ARGV[3], 'error_msg', ARGV[4], 'end_time', ARGV[5], 'expires_at', ARGV[6],
  'runner', 'null', 'cancel_requested', ARGV[7])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
redis.call('ZADD', KEYS[6], tonumber(ARGV[6]), ARGV[1])
return 1
"""


def _j(value: object) -> str:
    return json.dumps(value)


class RedisStore(JobStore):
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._create = self._redis.register_script(_CREATE)
        self._claim = self._redis.register_script(_CLAIM)
        self._renew = self._redis.register_script(_RENEW)
        self._page_done = self._redis.register_script(_PAGE_DONE)
        self._end = self._redis.register_script(_END)

    @staticmethod
    def _owner_key(owner: str) -> str:
        return f"{P}owner:{owner}"

    @staticmethod
    def _batch_key(owner: str, batch_id: str | None) -> str:
        return f"{P}batch:{owner}:{batch_id}" if batch_id else ""

    async def create(self, job: Job, limits: Limits) -> Job:
        idem = f"{P}idem:{job.owner}:{job.idempotency}" if job.idempotency else ""
        fields = [x for item in job.to_record().items() for x in item]
        outcome = await self._create(
            keys=[f"{P}job:{job.id}", PENDING_KEY, self._owner_key(job.owner), idem,
                  self._batch_key(job.owner, job.batch_id), EXPIRY_KEY],
            args=[job.id, job.created_at, job.expires_at, limits.queue_size, limits.key_quota, *fields])
        if outcome[0] == "QUEUE":
            raise QueueFull()
        if outcome[0] == "QUOTA":
            raise QuotaExceeded()
        found = await self.get(outcome[1])
        assert found is not None
        return found

    async def get(self, job_id: str) -> Job | None:
        record = await self._redis.hgetall(f"{P}job:{job_id}")
        return Job.from_record({str(k): str(v) for k, v in record.items()}) if record else None

    async def batch(self, owner: str, batch_id: str) -> list[Job]:
        ids = await self._redis.zrange(self._batch_key(owner, batch_id), 0, -1)
        jobs = [await self.get(str(job_id)) for job_id in ids]
        return [job for job in jobs if job is not None]

    async def claim(self, runner: str, now: float, lease: float) -> Job | None:
        job_id = await self._claim(keys=[PENDING_KEY, RUNNING_KEY],
                                   args=[P, now, now + lease, _j(runner), _j(RUNNING)])
        return await self.get(job_id) if job_id else None

    async def renew(self, job_id: str, runner: str, now: float, lease: float) -> Job | None:
        held = await self._renew(keys=[f"{P}job:{job_id}", RUNNING_KEY],
                                 args=[_j(runner), now + lease, _j(RUNNING), job_id])
        job = await self.get(job_id)
        if held or (job is not None and job.cancel_requested):
            return job
        return None

    async def set_total(self, job_id: str, total: int) -> None:
        await self._redis.hset(f"{P}job:{job_id}", "total_pages", _j(total))

    async def page_done(self, job_id: str, index: int) -> int:
        return int(await self._page_done(keys=[f"{P}job:{job_id}", f"{P}pages:{job_id}"], args=[index]))

    async def pages_done(self, job_id: str) -> set[int]:
        return {int(i) for i in await self._redis.smembers(f"{P}pages:{job_id}")}

    async def _end_job(self, job_id: str, runner: str, state: str, error: str | None, now: float,
                       expires_at: float, cancel: bool) -> bool:
        job = await self.get(job_id)
        if job is None:
            return False
        ended = await self._end(
            keys=[f"{P}job:{job_id}", PENDING_KEY, RUNNING_KEY, self._owner_key(job.owner),
                  FINISHED_KEYS[state], EXPIRY_KEY],
            args=[job_id, _j(runner) if runner else "", _j(state), _j(error), _j(now), expires_at, _j(cancel),
                  _j(DONE), _j(FAILED)])
        return bool(ended)

    async def finish(self, job_id: str, runner: str, state: str, error: str | None, now: float,
                     expires_at: float) -> bool:
        return await self._end_job(job_id, runner, state, error, now, expires_at, cancel=False)

    async def cancel(self, job_id: str, now: float, expires_at: float) -> Job | None:
        await self._end_job(job_id, "", FAILED, CANCELLED, now, expires_at, cancel=True)
        return await self.get(job_id)

    async def expired(self, now: float) -> list[str]:
        return [str(job_id) for job_id in await self._redis.zrangebyscore(EXPIRY_KEY, "-inf", now)]

    async def delete(self, job_id: str) -> None:
        job = await self.get(job_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(f"{P}job:{job_id}", f"{P}pages:{job_id}")
            for key in (PENDING_KEY, RUNNING_KEY, EXPIRY_KEY):
                pipe.zrem(key, job_id)
            for key in FINISHED_KEYS.values():
                pipe.srem(key, job_id)
            if job is not None:
                pipe.srem(self._owner_key(job.owner), job_id)
                if job.batch_id:
                    pipe.zrem(self._batch_key(job.owner, job.batch_id), job_id)
                if job.idempotency:
                    pipe.delete(f"{P}idem:{job.owner}:{job.idempotency}")
            await pipe.execute()

    async def counts(self) -> dict[str, int]:
        sizes = {PENDING: await self._redis.zcard(PENDING_KEY), RUNNING: await self._redis.zcard(RUNNING_KEY)}
        for state, key in FINISHED_KEYS.items():
            sizes[state] = await self._redis.scard(key)
        return {state: int(sizes[state]) for state in STATES}

    async def secret(self, proposed: bytes) -> bytes:
        await self._redis.set(P + "meta:url_secret", proposed.hex(), nx=True)
        return bytes.fromhex(str(await self._redis.get(P + "meta:url_secret")))

    async def close(self) -> None:
        await self._redis.aclose()
