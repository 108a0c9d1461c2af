"""Works the jobs: each gateway process runs `HPS_JOB_RUNNERS` of these, which claim jobs from the store.

A claimed job holds one slot of the gateway's inference pool for as long as it runs, so jobs and interactive
requests share one bound on Triton's work. Its pages go to Triton as one-page `/layout-parsing` requests
marked as background work, `HPS_JOB_PAGE_WINDOW` at a time; each finished page is written as its JSONL line
and counted in the store at once, so a job picked up again (after a crash, by any runner) goes on from there.
The runner renews its lease while it works, and stops the job's pages within a heartbeat when the job is
cancelled, or at once when the cancel arrives in the same process. Transient failures (Triton or the VLM
unavailable) are tried again; an answer that says the page itself is wrong fails the job with its reason.
Expired jobs are deleted by whichever runner looks first.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

from contract.envelope import dumps
from contract.names import LAYOUT_PARSING, RESTRUCTURE_PAGES
from contract.page_ranges import PageRangeError, select_pages
from gateway.admission import Pool
from gateway.errors import GatewayError, Overloaded
from gateway.triton import TritonClient
from jobs import metrics
from jobs.documents import DocumentInfo, inspect, page_file
from jobs.files import JobFiles
from jobs.protocol import DONE, FAILED, JobRequestError
from jobs.results import page_line
from jobs.settings import JobSettings
from jobs.store import Job, JobStore
from safefetch import FetchError, FetchLimits, fetch_url

log = logging.getLogger("jobs.runner")

FILE_MARK = "jobfile:"        # a stored file in a line, made a signed link when the line is served
SLOT_RETRY = 2.0              # the longest a job steps back when the pool's queue is full
SWEEP_EVERY = 30.0            # seconds between looks for expired jobs (more often with a short retention)
RESTRUCTURE_OPTIONS = ("mergeTables", "relevelTitles", "prettifyMarkdown", "showFormulaNumber",
                       "returnMarkdownImages")


class JobFailed(Exception):
    """The job cannot be finished; the message is its `errorMsg`."""


class JobRunner:
    def __init__(self, *, store: JobStore, files: JobFiles, triton: TritonClient, pool: Pool,
                 settings: JobSettings, inference_timeout: float, number: int = 0) -> None:
        self.store, self.files, self.triton, self.pool = store, files, triton, pool
        self.settings = settings
        self.timeout = inference_timeout
        self.name = f"{socket.gethostname()}-{os.getpid()}-{number}"
        self._working: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()
        self._nudged = asyncio.Event()

    # --- the loop -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and work jobs until cancelled; between jobs, delete what has expired. A failing store (Redis
        down, say) is tried again a little later; the jobs wait in it."""
        swept, sweep_every = 0.0, min(SWEEP_EVERY, self.settings.retention / 4)
        while True:
            try:
                if time.monotonic() - swept > sweep_every:
                    await self._sweep()
                    swept = time.monotonic()
                job = await self.store.claim(self.name, time.time(), self.settings.lease)
                if job is None:
                    await self._idle()
                    continue
                await self._hold(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job runner %s: the job store failed; trying again in 5 s", self.name)
                await asyncio.sleep(5.0)

    def nudge(self) -> None:
        """A job was submitted in this process: look for it now, not at the next poll."""
        self._nudged.set()

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._nudged.wait(), self.settings.poll)
        self._nudged.clear()

    def cancel_local(self, job_id: str) -> bool:
        """Stop the job's pages at once if this runner works on it (the store already says cancelled)."""
        work = self._working.get(job_id)
        if work is None:
            return False
        self._cancelled.add(job_id)
        work.cancel()
        return True

    async def _hold(self, job: Job) -> None:
        """Work one job under its lease; finish it unless it was cancelled or taken over meanwhile."""
        log.info("job %s: claimed by %s (%d of %d pages done before)", job.id, self.name, job.extracted_pages,
                 job.total_pages)
        work = asyncio.ensure_future(self._work(job))
        self._working[job.id] = work
        heartbeat = asyncio.ensure_future(self._heartbeat(job.id, work))
        state, error = DONE, None
        try:
            await work
        except JobFailed as exc:
            state, error = FAILED, str(exc)
        except Exception:
            log.exception("job %s: unexpected failure", job.id)
            state, error = FAILED, "the job failed on an internal error (the gateway's log has the details)"
        except asyncio.CancelledError:
            if job.id not in self._cancelled:   # not a cancel or a lost lease: this runner is stopping
                await self.store.renew(job.id, self.name, time.time(), -1.0)   # others may take it at once
                raise
            log.info("job %s: stopped (cancelled, or taken over after a lapsed lease)", job.id)
            return
        finally:
            heartbeat.cancel()
            self._working.pop(job.id, None)
            self._cancelled.discard(job.id)
        now = time.time()
        if await self.store.finish(job.id, self.name, state, error, now, now + self.settings.retention):
            metrics.JOBS_FINISHED.labels(state).inc()
            log.info("job %s: %s%s", job.id, state, f" ({error})" if error else "")

    async def _heartbeat(self, job_id: str, work: asyncio.Future[None]) -> None:
        every = min(1.0, self.settings.lease / 3)
        while not work.done():
            await asyncio.sleep(every)
            held = await self.store.renew(job_id, self.name, time.time(), self.settings.lease)
            if held is None or held.cancel_requested:
                self._cancelled.add(job_id)
                work.cancel()
                return

    async def _sweep(self) -> None:
        for job_id in await self.store.expired(time.time()):
            await asyncio.to_thread(self.files.delete, job_id)
            await self.store.delete(job_id)
            log.info("job %s: expired and deleted", job_id)
        metrics.observe_states(await self.store.counts())

    # --- one job ------------------------------------------------------------------------------------------

    async def _work(self, job: Job) -> None:
        data = await self._input(job)
        try:
            info = await asyncio.to_thread(inspect, data, self.settings.max_pages)
            positions = select_pages(job.page_ranges, info.pages)
        except (JobRequestError, PageRangeError) as exc:
            raise JobFailed(str(exc)) from None
        if job.total_pages != len(positions):
            await self.store.set_total(job.id, len(positions))
        done = await self.store.pages_done(job.id)
        todo = [n for n in range(len(positions)) if n not in done]
        document_wide = ("restructurePages", *RESTRUCTURE_OPTIONS)
        options = {k: v for k, v in job.options.items() if k not in document_wide}
        async with self._slot():
            # `page_window` workers take the pages in order, so that a 1000-page job holds a few coroutines,
            # not one waiting per page.
            pending = iter(todo)

            async def worker() -> None:
                for position in pending:
                    await self._page(job, data, info, positions, position, options)

            await _all_or_nothing([worker() for _ in range(min(self.settings.page_window, len(todo)))])
            if job.options.get("restructurePages"):
                await self._restructure(job, len(positions))

    async def _input(self, job: Job) -> bytes:
        data = await asyncio.to_thread(self.files.read_input, job.id)
        if data is not None:
            return data
        if job.file_url is None:
            raise JobFailed("the job's file is gone")
        limits = FetchLimits(timeout=self.settings.url_fetch_timeout, max_bytes=self.settings.max_file_bytes,
                             allow_private=self.settings.allow_private_urls)
        try:
            data = await fetch_url(job.file_url, limits)
        except FetchError as exc:
            raise JobFailed(str(exc)) from None
        await asyncio.to_thread(self.files.save_input, job.id, data)
        return data

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One slot of the inference pool for the whole job, waited for as long as it takes: in line, past
        `HPS_MAX_QUEUE_WAIT` (which would re-queue it behind every request that came meanwhile); and a full
        queue, a 503 to a client, is no failure for an accepted job, which steps back for the Retry-After
        the pool names (at most `SLOT_RETRY`) and asks again."""
        forever = 10 * 365 * 86_400.0
        async with contextlib.AsyncExitStack() as held:
            while True:
                try:
                    line = self.pool.slot(time.monotonic() + forever, max_wait=forever)
                    await held.enter_async_context(line)
                    break
                except Overloaded as exc:
                    await asyncio.sleep(min(float(exc.headers.get("Retry-After", 1)), SLOT_RETRY))
            yield

    async def _page(self, job: Job, data: bytes, info: DocumentInfo, positions: list[int], position: int,
                    options: dict[str, Any]) -> None:
        index = positions[position]
        page, file_type = await asyncio.to_thread(page_file, data, info.kind, index)
        body = {**options, "file": base64.b64encode(page).decode("ascii"), "fileType": file_type,
                "logId": f"{job.id}-p{index + 1}"}
        result = await self._ask(LAYOUT_PARSING, body, f"page {index + 1}")
        store = partial(self._store_file, job.id)
        line = await asyncio.to_thread(page_line, result, page_number=index + 1, pages=len(positions),
                                       kind=info.kind, store=store)
        await asyncio.shield(self._keep(job.id, position, dumps(line)))

    async def _keep(self, job_id: str, position: int, line: bytes) -> None:
        """Save a page's line and count it, both or neither: a cancel arriving between them (the caller is
        shielded from it) would leave a line on disk that the job's progress never counted."""
        await asyncio.to_thread(self.files.save_line, job_id, position, line)
        await self.store.page_done(job_id, position)
        metrics.PAGES_DONE.inc()

    def _store_file(self, job_id: str, name: str, data: bytes) -> str:
        self.files.save_file(job_id, name, data)
        return FILE_MARK + name

    async def _ask(self, model: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        """The engine's `result` for one request; transient failures are tried again, the last one fails
        the job, and so does an answer that says the request itself is wrong."""
        attempts = self.settings.page_attempts
        for attempt in range(1, attempts + 1):
            try:
                out = await self.triton.infer(model, dumps(body), log_id=body.get("logId", what),
                                              seconds=self.timeout, parameters={"background": True})
            except GatewayError as exc:
                if attempt == attempts:
                    raise JobFailed(f"{what}: {exc.message}") from None
                await asyncio.sleep(min(2.0 ** attempt, 30.0))
                continue
            envelope = json.loads(out.body)
            if out.status == 200:
                return dict(envelope["result"])
            if out.status in (502, 503, 504) and attempt < attempts:
                await asyncio.sleep(min(2.0 ** attempt, 30.0))
                continue
            raise JobFailed(f"{what}: {envelope.get('errorMsg', 'failed')}")
        raise AssertionError("unreachable")

    async def _restructure(self, job: Job, count: int) -> None:
        """`restructurePages`: tables merged and titles relevelled over the document; lines rewritten."""
        lines = []
        for n in range(count):
            stored = await asyncio.to_thread(self.files.read_line, job.id, n)
            if stored is None:
                raise JobFailed(f"the line of page {n + 1} of the job is missing")
            lines.append(json.loads(stored))
        pages = [line["result"]["layoutParsingResults"][0] for line in lines]
        body = {"pages": [{"prunedResult": p["prunedResult"], "markdownImages": p["markdown"].get("images")}
                          for p in pages],
                **{k: v for k, v in job.options.items() if k in RESTRUCTURE_OPTIONS},
                "logId": f"{job.id}-restructure"}
        result = await self._ask(RESTRUCTURE_PAGES, body, "restructuring the pages")
        for n, (line, new) in enumerate(zip(lines, result["layoutParsingResults"], strict=True)):
            line["result"]["layoutParsingResults"][0].update(prunedResult=new["prunedResult"],
                                                             markdown=new["markdown"])
            await asyncio.to_thread(self.files.save_line, job.id, n, dumps(line))


async def _all_or_nothing(works: list[Awaitable[None]]) -> None:
    """Await every one; at the first failure, stop the others and raise it."""
    tasks = [asyncio.ensure_future(w) for w in works]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


Factory = Callable[[int], JobRunner]
