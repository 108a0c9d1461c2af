"""Images by URL for one gateway process: link an answer's images, serve them, delete them when expired."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from pathlib import Path

from imagelinks.rewrite import link_images
from imagelinks.store import AnswerImages

log = logging.getLogger("imagelinks")

IMAGES_PATH = "/images"
SWEEP_EVERY = 60.0   # seconds between looks for expired answers (more often with a short retention)


class ImageLinks:
    def __init__(self, data_dir: str | Path, *, retention: float, public_url: str = "") -> None:
        self.store = AnswerImages(data_dir)
        self.retention, self.public_url = retention, public_url.rstrip("/")
        self._sweeper: asyncio.Task[None] | None = None

    async def link(self, body: bytes, base_url: str) -> bytes:
        """`body` (an envelope) with its images stored and replaced by their URLs (off the event loop)."""
        answer = self.store.new_answer()
        base = f"{self.public_url or base_url.rstrip('/')}{IMAGES_PATH}/{answer}/"

        def save(name: str, data: bytes) -> str:
            self.store.save(answer, name, data)
            return base + name

        return await asyncio.to_thread(partial(link_images, body, save))

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="image-links-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def _sweep(self) -> None:
        every = min(SWEEP_EVERY, self.retention / 4)
        while True:
            try:
                removed = await asyncio.to_thread(self.store.sweep, self.retention)
                if removed:
                    log.info("images of %d expired answer(s) deleted", removed)
            except OSError:
                log.exception("sweeping the answers' images failed; trying again later")
            await asyncio.sleep(every)
