"""The engine: request JSON in, response envelope out, every request finished as soon as its own work is done.

Each page of each request is its own coroutine: decode -> layout (shared, fair batches across all requests
in flight) -> crops -> VLM (one global bound, round-robin between requests) -> assembly. So a short request
never waits for a long one it happened to arrive with, and the VLM server sees block requests from many
pages and requests at once. CPU-heavy steps run in worker threads to keep the event loop free.

A request works on at most `page_window` pages at once: a page is decoded (a PDF page rendered) when its
turn comes and its image let go once its result is assembled, so a request holds about `page_window` page
images (some 6 MB each for A4 at scale 2) however long its document, while the window's pages still give
the layout batches and the VLM plenty to work on together.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, cast

import httpx
import numpy as np
from pydantic import ValidationError

from contract.envelope import client_log_id, envelope, validation_message
from contract.models import LayoutParsingRequest, RestructurePagesRequest
from docengine import inputs, pagetext, profiles
from docengine.assemble import PageImages, encode_page_images, page_entry
from docengine.blocks import finish_page
from docengine.errors import EngineError
from docengine.layout.base import Detector
from docengine.layout.postprocess import filter_overlap_boxes, postprocess
from docengine.layout.scheduler import LayoutScheduler
from docengine.layout.textlines import TextLineDetector
from docengine.options import AssembleOptions, ParseOptions, parse_options, restructure_options
from docengine.preprocess import DocPreprocessor, Preprocessed
from docengine.recognition.client import VLMClient
from docengine.restructure import restructure_blocks, restructure_pages
from docengine.settings import EngineSettings
from docengine.types import Block, DecodedDocument, LayoutBox, LayoutParams, RequestMeta

log = logging.getLogger(__name__)


class Engine:
    """One per Triton model instance; all methods are coroutines on one event loop."""

    def __init__(
        self,
        settings: EngineSettings,
        *,
        detector: Detector | None = None,
        vlm: VLMClient | None = None,
        preprocessor: DocPreprocessor | None = None,
    ) -> None:
        self.settings = settings
        self.layout_defaults: LayoutParams = profiles.layout_defaults(settings)
        detector = detector or profiles.build_detector(settings)
        self.layout = LayoutScheduler(detector, settings.layout_batch_size)
        self.vlm = vlm or VLMClient.from_settings(settings)
        self.preprocessor = preprocessor or DocPreprocessor.from_settings(settings)
        self.text_lines = TextLineDetector()   # uncovered text on pages without a text layer
        self._http: httpx.AsyncClient | None = None

    def stats(self) -> dict[str, int]:
        """Running totals and current levels of the engine's work, exported as Triton metrics."""
        caller = getattr(self.vlm, "caller", None)
        return {
            "layout_batches_total": self.layout.batches_run,
            "layout_pages_total": self.layout.pages_detected,
            "vlm_calls_total": getattr(caller, "calls_total", 0),
            "vlm_retries_total": getattr(caller, "retries_total", 0),
            "vlm_failures_total": self.vlm.failures_total,
            "vlm_in_flight": self.vlm.in_flight,
            "vlm_queued": self.vlm.queued(),
            "vlm_requests": self.vlm.owners(),
        }

    async def aclose(self) -> None:
        await self.layout.aclose()
        await self.vlm.aclose()
        if self._http is not None:
            await self._http.aclose()

    # --- entry points: raw request bytes -> envelope dict ------------------------------------------------

    async def layout_parsing(self, raw: bytes | str, meta: RequestMeta = RequestMeta()) -> dict[str, Any]:
        async def parse(req: LayoutParsingRequest, log_id: str) -> dict[str, Any]:
            return await self.parse(req, log_id, background=meta.background)

        return await handle_request(raw, LayoutParsingRequest, parse, meta.log_id)

    # --- /layout-parsing ------------------------------------------------------------------------------

    async def parse(self, req: LayoutParsingRequest, log_id: str, *,
                    background: bool = False) -> dict[str, Any]:
        """The wire model stops here: everything behind reads the resolved options. `background` work (a page
        of an asynchronous job) waits for interactive requests in layout and at the VLM."""
        options = parse_options(req, self.settings, self.layout_defaults, self.preprocessor.available)
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.settings.url_fetch_timeout, follow_redirects=False)
        doc = await inputs.load_document(options.source, self.settings, http=self._http)
        try:
            # Unique even when clients reuse a logId: the owner is whose work a failure or a cancel stops.
            owner = Owner(f"{log_id}#{uuid.uuid4().hex[:8]}", background)
            pages = await self._pages(owner, doc, options)
        finally:
            await asyncio.to_thread(doc.close)   # waits for the PDFium lock: not on the event loop
        if options.restructure is not None:
            restructure = options.restructure
            await asyncio.to_thread(restructure_blocks, [p.blocks for p in pages],
                                    merge_tables=restructure.merge_tables,
                                    relevel_titles=restructure.relevel_titles)
        results = await asyncio.to_thread(
            lambda: [p.entry(options.assemble, i) for i, p in enumerate(pages)])   # a docx is CPU work
        log.info("[%s] parsed %d page(s)", log_id, len(results))
        return {"layoutParsingResults": results,
                "dataInfo": {**doc.info(), **pagetext.data_info([p.blocks for p in pages])}}

    async def _pages(self, owner: Owner, doc: DecodedDocument, options: ParseOptions) -> list[ParsedPage]:
        """Every page, in order. `page_window` workers each take the next page in turn and finish it before
        taking another; the first failure stops them all."""
        results: list[ParsedPage | None] = [None] * len(doc)
        indices = iter(range(len(results)))   # shared: each page is taken by one worker
        before_layout = asyncio.Semaphore(self.settings.layout_batch_size + 1)

        async def worker() -> None:
            for index in indices:
                results[index] = await self._page(owner, doc, index, before_layout, options)

        count = min(self.settings.page_window, len(results))
        workers = [asyncio.create_task(worker()) for _ in range(count)]
        try:
            await asyncio.gather(*workers)
        finally:
            self.layout.forget(owner.name)   # no await before the workers stop: none queues another page
            await _stop(workers)   # after a failure (or cancellation) the other workers must not go on
        return cast(list[ParsedPage], results)

    async def _page(self, owner: Owner, doc: DecodedDocument, index: int, before_layout: asyncio.Semaphore,
                    options: ParseOptions) -> ParsedPage:
        """One page from its image to what its answer needs; the image is let go when this returns.

        `before_layout` bounds the pages of the request that are rendered and not yet through layout to one
        layout batch and one more: enough to keep the detector fed, where rendering all the window's pages
        at once would only take CPU from the other requests' pages in layout."""
        rec = options.recognition
        boxes = None
        async with before_layout:
            page = await inputs.read_page(doc, index)
            page, preprocessed = await self._preprocess(page, options)
            dets = (await self.layout.detect(owner.name, page, background=owner.background)
                    if rec.use_layout_detection else None)
        if dets is not None:
            height, width = page.shape[:2]
            boxes = await asyncio.to_thread(
                lambda: filter_overlap_boxes(postprocess(dets, options.layout, (width, height))))
        # The text layer is where the page was drawn: a page turned or unwarped by preprocessing no longer is.
        reshaped = preprocessed is not None and (preprocessed.angle != 0
                                                 or preprocessed.options.use_doc_unwarping)
        layer = None if reshaped else await pagetext.read_layer(doc, doc.index(index), options.text)
        work = await asyncio.to_thread(pagetext.prepare, page, boxes, layer, options, self.text_lines)
        tasks = [task for _, task in work.tasks]
        texts = await self.vlm.recognize(owner.name, tasks, background=owner.background) if tasks else []
        blocks = await asyncio.to_thread(finish_page, work, texts, rec)
        images = await asyncio.to_thread(encode_page_images, page, boxes or [], blocks, options.assemble,
                                         preprocessed)
        for block in blocks:
            block.image = None   # encoded: the crops of the page image can go with it
        return ParsedPage((page.shape[1], page.shape[0]), boxes or [], blocks, images, preprocessed)

    async def _preprocess(self, page: np.ndarray,
                          options: ParseOptions) -> tuple[np.ndarray, Preprocessed | None]:
        """Document preprocessing when asked (orientation, unwarping): the page that layout then reads."""
        if options.preprocess is None:
            return page, None
        run = functools.partial(self.preprocessor.run, page, options.preprocess,
                                visualize=options.assemble.visualize,
                                max_output_image_size=options.assemble.max_output_image_size)
        return await asyncio.to_thread(run)


@dataclass(frozen=True)
class Owner:
    """Whose work a page's layout and VLM calls are: the turns, a failure and a cancellation are per owner."""

    name: str
    background: bool = False


@dataclass
class ParsedPage:
    """A recognised page without its pixels: enough to write its answer, after restructuring if asked."""

    size: tuple[int, int]
    boxes: list[LayoutBox]
    blocks: list[Block]
    images: PageImages
    preprocessed: Preprocessed | None = None

    def entry(self, options: AssembleOptions, index: int) -> dict[str, Any]:
        return page_entry(self.size, self.boxes, self.blocks, options, self.images, self.preprocessed, index)


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks`, wait for them to end and forget them. A failed task holds its exception, whose
    traceback holds the caller's frame: were the caller to keep a reference to the task (in a list, or a loop
    variable), that cycle would keep the page images of every stopped task until the garbage collector ran."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()


async def handle_request(raw: bytes | str, model: Any, run: Any, log_id: str | None = None) -> dict[str, Any]:
    """Validate `raw` as `model`, await `run(request, log_id)`, and turn every outcome into an envelope.

    The logId is the body's own, else `log_id` (the gateway's, which comes as Triton's request id, so that the
    client's bytes travel untouched), else a fresh uuid4."""
    try:
        req = model.model_validate_json(raw)
    except ValidationError as exc:
        return envelope(_peek_log_id(raw) or log_id or str(uuid.uuid4()), code=422,
                        msg=validation_message(exc))
    log_id = req.log_id or log_id or str(uuid.uuid4())
    try:
        return envelope(log_id, await run(req, log_id))
    except EngineError as exc:
        log.warning("[%s] request failed with %d: %s", log_id, exc.status, exc.message)
        return envelope(log_id, code=exc.status, msg=exc.message)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("[%s] unexpected failure", log_id)
        return envelope(log_id, code=500, msg="Internal server error")


async def restructure(raw: bytes | str, meta: RequestMeta = RequestMeta()) -> dict[str, Any]:
    """`/restructure-pages`: no model involved, so no Engine either."""
    return await handle_request(raw, RestructurePagesRequest, _restructure_request, meta.log_id)


async def _restructure_request(req: RestructurePagesRequest, log_id: str) -> dict[str, Any]:
    options = restructure_options(req)
    pages = [(p.pruned_result, p.markdown_images) for p in req.pages]
    results = await asyncio.to_thread(restructure_pages, pages, **dataclasses.asdict(options))
    return {"layoutParsingResults": results}


def _peek_log_id(raw: bytes | str) -> str | None:
    """The client's logId if the body is a JSON object carrying a string one."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    return client_log_id(body)
