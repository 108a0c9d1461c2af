"""The Job API's parts for one gateway process, started and stopped with it (the gateway's lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field

from gateway.admission import Pool
from gateway.triton import TritonClient
from jobs.files import JobFiles
from jobs.links import LinkSigner
from jobs.runner import JobRunner
from jobs.settings import JobSettings
from jobs.store import JobStore, open_store

log = logging.getLogger("jobs")


@dataclass
class JobService:
    settings: JobSettings
    store: JobStore
    files: JobFiles
    signer: LinkSigner
    runners: list[JobRunner] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def nudge(self) -> None:
        """Wake this process's idle runners for a job just submitted."""
        for runner in self.runners:
            runner.nudge()

    def cancel_local(self, job_id: str) -> None:
        for runner in self.runners:
            runner.cancel_local(job_id)

    async def stop(self) -> None:
        """Stop the runners (a job in the middle goes back to the store for any runner to go on with)."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.store.close()


async def start(settings: JobSettings, *, triton: TritonClient, pool: Pool,
                inference_timeout: float) -> JobService:
    store = open_store(settings.store, settings.data_dir)
    secret = settings.url_secret.encode() if settings.url_secret else await store.secret(os.urandom(32))
    service = JobService(settings, store, JobFiles(settings.data_dir), LinkSigner(secret))
    for number in range(settings.runners):
        runner = JobRunner(store=store, files=service.files, triton=triton, pool=pool, settings=settings,
                           inference_timeout=inference_timeout, number=number)
        service.runners.append(runner)
        service.tasks.append(asyncio.create_task(runner.run(), name=f"job-runner-{number}"))
    log.info("Job API: store %s, data in %s, %d runner(s) of %d pages each", settings.store or "SQLite",
             settings.data_dir, settings.runners, settings.page_window)
    return service
