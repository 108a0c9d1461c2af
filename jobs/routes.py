"""The Job API's routes: submit, status, batch, cancel and progress events (behind the API key when keys are
on), and the pre-signed result links (the JSONL and its images), which need no key.

`jsonUrl` can be read while the job runs: each page's line is sent as soon as it and the pages before it are
done, and the stream ends when the job ends. `GET .../{jobId}/events` sends the progress as server-sent
events until the job ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import ValidationError

from contract.page_ranges import PageRangeError, select_pages
from gateway.errors import GatewayError
from gateway.keys import presented_key
from jobs import metrics
from jobs.documents import inspect
from jobs.protocol import (
    DONE,
    JOBS_PATH,
    RESULTS_PATH,
    RUNNING,
    JobRequestError,
    Submission,
    SubmitByUrl,
    answer,
    check_submission,
    failures,
    iso,
    submit_body_openapi,
)
from jobs.runner import FILE_MARK
from jobs.service import JobService
from jobs.store import Job, Limits, QueueFull, QuotaExceeded

EVENT_POLL = 0.5       # seconds between looks at a job for its events and its live JSONL
_MARKED = re.compile(rb'"' + FILE_MARK.encode() + rb'([A-Za-z0-9._-]+)"')


def refused(message: str, status: int = 400, headers: dict[str, str] | None = None) -> GatewayError:
    error = GatewayError(message, headers=headers)
    error.status = status
    return error


def get_jobs(request: Request) -> JobService:
    service: JobService | None = getattr(request.app.state, "jobs", None)
    if service is None:
        raise refused("the Job API is off on this gateway (HPS_JOB_ENABLED)", 404)
    return service


def owner_of(request: Request) -> str:
    """Whose jobs: the hash of the API key the request shows, else everyone's (keys off)."""
    key = presented_key(request.headers)
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:24] if key else "anonymous"


Jobs = Annotated[JobService, Depends(get_jobs)]
Owner = Annotated[str, Depends(owner_of)]
api = APIRouter(tags=["jobs"])
links = APIRouter(tags=["jobs"])


def base_url(service: JobService, request: Request) -> str:
    return service.settings.public_url or str(request.base_url)


def status_data(job: Job, service: JobService, request: Request) -> dict[str, Any]:
    """A job as `GET /api/v2/ocr/jobs/{jobId}` shows it (and each item of a batch)."""
    data: dict[str, Any] = {
        "jobId": job.id, "state": job.state, "model": job.model, "batchId": job.batch_id,
        "extractProgress": {"totalPages": job.total_pages, "extractedPages": job.extracted_pages,
                            "startTime": iso(job.start_time), "endTime": iso(job.end_time)}}
    if job.state in (RUNNING, DONE):
        path = f"{RESULTS_PATH}/{job.id}/result.jsonl"
        data["resultUrl"] = {"jsonUrl": service.signer.link(base_url(service, request), path,
                                                            link_expiry(job, service))}
    if job.error_msg:
        data["errorMsg"] = job.error_msg
    return data


def link_expiry(job: Job, service: JobService) -> float:
    """A finished job's links expire with it; a running job's a retention from now (it may run longer)."""
    return job.expires_at if job.finished else time.time() + service.settings.retention


async def own_job(service: JobService, job_id: str, owner: str) -> Job:
    job = await service.store.get(job_id) if re.fullmatch(r"[0-9a-f]{32}", job_id) else None
    if job is None or job.owner != owner:
        raise refused(f"job {job_id} not found (unknown, expired, or another key's)", 404)
    return job


# --- submit -------------------------------------------------------------------------------------------------


@api.post(JOBS_PATH, summary="Submit a document as an asynchronous job (JSON with fileUrl, or multipart)",
          openapi_extra=submit_body_openapi(), responses=failures(400, 401, 429, 503))
async def submit(request: Request, service: Jobs, owner: Owner,
                 idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    """JSON `{fileUrl, model, optionalPayload, pageRanges?, batchId?}`, or a multipart form with `file` and
    the same fields (`optionalPayload` as a JSON string). Answers `{code: 0, data: {jobId}}`."""
    settings = service.settings
    job_id = uuid.uuid4().hex
    data, submission = await _read_submission(request, settings.pipeline_name, settings.max_file_bytes)
    if data is not None:
        try:
            info = await asyncio.to_thread(inspect, data, settings.max_pages)
            select_pages(submission.page_ranges, info.pages)
        except (JobRequestError, PageRangeError) as exc:
            raise refused(str(exc)) from None
        await asyncio.to_thread(service.files.save_input, job_id, data)
    now = time.time()
    job = Job(id=job_id, owner=owner, model=submission.model, options=submission.options,
              page_ranges=submission.page_ranges, batch_id=submission.batch_id, file_url=submission.file_url,
              created_at=now, expires_at=now + settings.retention,
              idempotency=_idempotency(idempotency_key, data, submission))
    try:
        stored = await service.store.create(job, Limits(settings.queue_size, settings.key_quota))
    except QueueFull:
        await asyncio.to_thread(service.files.delete, job_id)
        raise refused("Server busy: the job queue is full; retry later", 503, {"Retry-After": "30"}) from None
    except QuotaExceeded:
        await asyncio.to_thread(service.files.delete, job_id)
        raise refused(f"this key already has {settings.key_quota} jobs waiting or running; retry when one "
                      "ends", 429, {"Retry-After": "30"}) from None
    if stored.id != job_id:   # the same submission again: its first job answers
        await asyncio.to_thread(service.files.delete, job_id)
    else:
        metrics.JOBS_SUBMITTED.inc()
        service.nudge()
    return JSONResponse(answer({"jobId": stored.id}))


async def _read_submission(request: Request, served: str, max_bytes: int) -> tuple[bytes | None, Submission]:
    """The uploaded file (None for a URL) and the checked fields of a JSON or multipart submission."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if media == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=16)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise JobRequestError("a multipart submission needs its document in the field `file`")
            data = await upload.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise JobRequestError(f"the file is over the limit of {max_bytes} bytes")
            fields = {k: form.get(k) for k in ("model", "optionalPayload", "pageRanges", "batchId")}
            if not isinstance(fields["model"], str):
                raise JobRequestError("the field `model` is required")
            text = {k: v if isinstance(v, str) else None for k, v in fields.items()}
            return data, check_submission(text["model"] or "", text["optionalPayload"] or "{}",
                                          text["pageRanges"], text["batchId"], served)
        body = SubmitByUrl.model_validate_json(await request.body())
        return None, check_submission(body.model, body.optionalPayload, body.pageRanges, body.batchId, served,
                                      file_url=body.fileUrl)
    except JobRequestError as exc:
        raise refused(exc.message) from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise refused(f"the submission is not valid: {problems}") from None


def _idempotency(key: str | None, data: bytes | None, submission: Submission) -> str | None:
    """The Idempotency-Key with a fingerprint of the file and options: the same key with another document
    or other options is another job."""
    if not key:
        return None
    digest = hashlib.sha256(data if data is not None else (submission.file_url or "").encode())
    digest.update(json.dumps([submission.model, submission.options, submission.page_ranges,
                              submission.batch_id], sort_keys=True).encode())
    return f"{key[:200]}:{digest.hexdigest()}"


# --- status, batch, cancel, events --------------------------------------------------------------------------


@api.get(JOBS_PATH + "/batch/{batch_id}", summary="The jobs of a batch", responses=failures(401))
async def batch(batch_id: str, request: Request, service: Jobs, owner: Owner) -> JSONResponse:
    jobs = await service.store.batch(owner, batch_id)
    return JSONResponse(answer({"batchId": batch_id,
                                "extractResult": [status_data(job, service, request) for job in jobs]}))


@api.get(JOBS_PATH + "/{job_id}", summary="A job's state, progress and result link",
         responses=failures(401, 404))
async def status(job_id: str, request: Request, service: Jobs, owner: Owner) -> JSONResponse:
    job = await own_job(service, job_id, owner)
    return JSONResponse(answer(status_data(job, service, request)))


@api.delete(JOBS_PATH + "/{job_id}", summary="Cancel a job: its pages stop, its state becomes failed",
            responses=failures(401, 404))
async def cancel(job_id: str, request: Request, service: Jobs, owner: Owner) -> JSONResponse:
    await own_job(service, job_id, owner)
    now = time.time()
    job = await service.store.cancel(job_id, now, now + service.settings.retention)
    service.cancel_local(job_id)
    if job is None:
        raise refused(f"job {job_id} not found", 404)
    return JSONResponse(answer(status_data(job, service, request)))


@api.get(JOBS_PATH + "/{job_id}/events", summary="The job's progress as server-sent events",
         response_class=StreamingResponse, responses=failures(401, 404))
async def events(job_id: str, request: Request, service: Jobs, owner: Owner) -> StreamingResponse:
    """`event: progress` with the job's status data whenever it changes, the last when it ends."""
    await own_job(service, job_id, owner)

    async def stream() -> AsyncIterator[bytes]:
        seen: tuple[str, int, int] | None = None
        while True:
            job = await service.store.get(job_id)
            if job is None:
                return
            now = (job.state, job.extracted_pages, job.total_pages)
            if now != seen:
                seen = now
                yield f"event: progress\ndata: {json.dumps(status_data(job, service, request))}\n\n".encode()
            if job.finished:
                return
            await asyncio.sleep(EVENT_POLL)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# --- pre-signed results -------------------------------------------------------------------------------------


def _check_link(service: JobService, request: Request) -> None:
    query = request.query_params
    if not service.signer.valid(request.url.path, query.get("expires"), query.get("signature"), time.time()):
        raise refused("this link is not valid (changed, or expired with its job's results)", 403)


@links.get(RESULTS_PATH + "/{job_id}/result.jsonl", summary="A job's JSONL (pre-signed link)",
           response_class=StreamingResponse, responses=failures(403, 404))
async def result_lines(job_id: str, request: Request, service: Jobs) -> StreamingResponse:
    """One line per page, sent as soon as the page and those before it are done; ends with the job."""
    _check_link(service, request)
    job = await service.store.get(job_id)
    if job is None:
        raise refused(f"job {job_id} not found (expired?)", 404)
    base, expires_at = base_url(service, request), link_expiry(job, service)

    def linked(line: bytes) -> bytes:
        def link(match: re.Match[bytes]) -> bytes:
            path = f"{RESULTS_PATH}/{job_id}/files/{match.group(1).decode()}"
            return b'"' + service.signer.link(base, path, expires_at).encode() + b'"'
        return _MARKED.sub(link, line)

    async def stream() -> AsyncIterator[bytes]:
        position = 0
        while True:
            current = await service.store.get(job_id)
            if current is None:
                return
            line = None
            if position < current.total_pages:
                line = await asyncio.to_thread(service.files.read_line, job_id, position)
            if line is not None:
                yield linked(line) + b"\n"
                position += 1
            elif current.finished:
                return
            else:
                await asyncio.sleep(EVENT_POLL / 2)

    return StreamingResponse(stream(), media_type="application/x-ndjson",
                             headers={"Cache-Control": "no-store"})


@links.get(RESULTS_PATH + "/{job_id}/files/{name}", summary="An image of a job's results (pre-signed link)",
           response_class=Response, responses=failures(403, 404))
async def result_file(job_id: str, name: str, request: Request, service: Jobs) -> FileResponse:
    _check_link(service, request)
    path = service.files.file_path(job_id, name)
    if path is None:
        raise refused(f"{name} not found (expired with its job?)", 404)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
