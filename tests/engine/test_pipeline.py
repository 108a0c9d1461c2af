"""`Engine.parse` on a long PDF: at most `page_window` pages of a request at work, results in page order,
`dataInfo` as the eager decoder reported it, and memory bounded by the window rather than the document.

The detector and the VLM are stand-ins; the PDF, its rendering and every other stage are real.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import math
import threading
import time
import tracemalloc
import weakref
from collections.abc import Awaitable
from typing import Any

import numpy as np
import pymupdf
import pytest

from contract.models import LayoutParsingRequest
from devkit.documents import eager_page_sizes
from docengine import inputs, pipeline
from docengine.errors import VLMUnavailableError
from docengine.pipeline import Engine
from docengine.restructure import restructure_pages
from docengine.settings import EngineSettings
from docengine.types import Detection, Source, VLMTask

PAGES = 40
TEXT = 22   # PP-DocLayout's "text"


def settings(**overrides: object) -> EngineSettings:
    values: dict[str, object] = dict(profile="gpu", page_window=4, layout_batch_size=8, pdf_render_scale=2.0)
    values.update(overrides)
    return EngineSettings(_env_file=None, **values)  # type: ignore[arg-type]


class BoxDetector:
    """Three text regions per page at fixed fractions of its size; records the size of every batch."""

    def __init__(self, seconds_per_batch: float = 0.03) -> None:
        self.batches: list[int] = []
        self.seconds = seconds_per_batch

    def detect(self, pages: list[np.ndarray]) -> list[list[Detection]]:
        self.batches.append(len(pages))
        time.sleep(self.seconds)
        out = []
        for page in pages:
            height, width = page.shape[:2]
            out.append([Detection(TEXT, 0.9, (0.1 * width, top * height, 0.9 * width, (top + 0.1) * height),
                                  order_key=float(n)) for n, top in enumerate((0.1, 0.4, 0.7))])
        return out


class FakeVLM:
    """Answers each block with its crop's width after a short wait; records how many pages' blocks (one
    `recognize` call per page) it has at once. `fail_after` calls, it fails the next one."""

    def __init__(self, seconds: float = 0.01, fail_after: int | None = None) -> None:
        self.seconds = seconds
        self.fail_after = fail_after
        self.calls = 0
        self.active = 0
        self.most_active = 0
        self.most_tasks = 0
        self.owners: set[str] = set()
        self._tasks = 0

    async def recognize(self, owner: str, tasks: list[VLMTask], *, background: bool = False) -> list[str]:
        self.calls += 1
        self.owners.add(owner)
        if self.fail_after is not None and self.calls > self.fail_after:
            raise VLMUnavailableError("the VLM is down")
        self.active += 1
        self._tasks += len(tasks)
        self.most_active = max(self.most_active, self.active)
        self.most_tasks = max(self.most_tasks, self._tasks)
        try:
            await asyncio.sleep(self.seconds)
            return [f"width {task.image.shape[1]}" for task in tasks]
        finally:
            self.active -= 1
            self._tasks -= len(tasks)

    async def aclose(self) -> None:
        pass


class PageTracker:
    """Every page image `PdfPages` renders: how many are rendered and not yet assembled into a result at
    most, and how many are alive at most (followed by weak references until they are garbage)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rendered = 0
        self.unfinished = self.most_unfinished = 0
        self.alive = self.most_alive = 0
        self._lock = threading.Lock()
        render, assemble = inputs.PdfPages._decode, pipeline.encode_page_images

        def rendered(pages: inputs.PdfPages, index: int) -> np.ndarray:
            image = render(pages, index)
            with self._lock:
                self.rendered += 1
                self.unfinished += 1
                self.alive += 1
                self.most_unfinished = max(self.most_unfinished, self.unfinished)
                self.most_alive = max(self.most_alive, self.alive)
            weakref.finalize(image, self._dropped)
            return image

        def assembled(*args: Any) -> Any:
            entry = assemble(*args)
            with self._lock:
                self.unfinished -= 1
            return entry

        monkeypatch.setattr(inputs.PdfPages, "_decode", rendered)
        monkeypatch.setattr(pipeline, "encode_page_images", assembled)

    def _dropped(self) -> None:
        with self._lock:
            self.alive -= 1


def long_pdf(pages: int = PAGES) -> bytes:
    """A4-sized pages, each a point wider than the one before, so that a result tells which page it is."""
    doc = pymupdf.open()
    for index in range(pages):
        page = doc.new_page(width=595 + index, height=842)
        page.insert_text((60, 90), f"Page {index + 1}", fontsize=20)
        page.insert_text((60, 400), "A paragraph of body text on the page.", fontsize=11)
    data = doc.tobytes()
    doc.close()
    return data


def request(pdf: bytes, **fields: object) -> LayoutParsingRequest:
    return LayoutParsingRequest.model_validate(
        {"file": base64.b64encode(pdf).decode(), "fileType": 0, "visualize": False, **fields})


async def outcome(work: Awaitable[object]) -> str:
    """The name of the exception `work` raised ("ok" if none), its traceback let go."""
    try:
        await work
    except Exception as exc:
        return type(exc).__name__
    return "ok"


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return long_pdf()


@pytest.fixture
def documents(monkeypatch: pytest.MonkeyPatch) -> list[inputs.PdfPages]:
    """The PDFs decoded during the test, to look at afterwards."""
    made: list[inputs.PdfPages] = []
    init = inputs.PdfPages.__init__

    def remember(pages: inputs.PdfPages, *args: Any) -> None:
        init(pages, *args)
        made.append(pages)

    monkeypatch.setattr(inputs.PdfPages, "__init__", remember)
    return made


async def parse(config: EngineSettings, pdf: bytes, vlm: FakeVLM | None = None,
                detector: BoxDetector | None = None) -> dict[str, Any]:
    engine = Engine(config, detector=detector or BoxDetector(), vlm=vlm or FakeVLM())  # type: ignore[arg-type]
    try:
        return await engine.parse(request(pdf), "req-1")
    finally:
        await engine.aclose()


async def test_a_window_of_pages_at_a_time_results_in_order(
        pdf: bytes, monkeypatch: pytest.MonkeyPatch, documents: list[inputs.PdfPages]) -> None:
    tracker = PageTracker(monkeypatch)
    vlm, detector = FakeVLM(), BoxDetector()
    config = settings(page_window=4)
    result = await parse(config, pdf, vlm, detector)

    assert tracker.rendered == PAGES                # each page rendered once ...
    assert 2 <= tracker.most_unfinished <= 4        # ... and never more than the window at work at once
    # Nor more alive, but for a worker thread that lets go of the page it was given a moment after the
    # result it made is in (the executor drops its work item after setting the result).
    assert tracker.most_alive <= 4 + 1
    await asyncio.sleep(0.05)
    assert tracker.alive == 0                       # nothing keeps a page image after the request
    assert 2 <= vlm.most_active <= 4                # the VLM has blocks of several pages at once
    assert vlm.most_tasks > 3                       # more than one page's three blocks
    assert max(detector.batches) > 1                # and the layout model gets batches
    assert len(documents) == 1 and documents[0].closed

    pages = result["layoutParsingResults"]
    widths = [math.ceil((595 + index) * 2) for index in range(PAGES)]
    assert [p["prunedResult"]["width"] for p in pages] == widths        # in page order
    assert all(len(p["prunedResult"]["parsing_res_list"]) == 3 for p in pages)
    eager = eager_page_sizes(pdf, config.pdf_render_scale, config.max_page_pixels)
    assert result["dataInfo"] == {"numPages": PAGES, "pages": eager, "type": "pdf"}
    assert [s["width"] for s in result["dataInfo"]["pages"]] == widths


async def test_a_failure_stops_the_window_and_closes_the_document(
        pdf: bytes, monkeypatch: pytest.MonkeyPatch, documents: list[inputs.PdfPages]) -> None:
    tracker = PageTracker(monkeypatch)
    engine = Engine(settings(page_window=4), detector=BoxDetector(), vlm=FakeVLM(fail_after=5))  # type: ignore[arg-type]
    gc.disable()                                    # the page images must go without its help
    try:
        assert await outcome(engine.parse(request(pdf), "req-1")) == "VLMUnavailableError"
        await asyncio.sleep(0.1)                    # a layout batch with a stopped page may still run
        assert tracker.alive == 0
    finally:
        gc.enable()
        await engine.aclose()
    assert len(documents) == 1 and documents[0].closed
    assert tracker.rendered <= 5 + 4                # no page is started after the failure


async def test_a_cancelled_request_closes_its_document(
        pdf: bytes, monkeypatch: pytest.MonkeyPatch, documents: list[inputs.PdfPages]) -> None:
    tracker = PageTracker(monkeypatch)
    task = asyncio.ensure_future(parse(settings(page_window=4), pdf, FakeVLM(seconds=0.05)))
    for _ in range(500):
        if tracker.rendered >= 6:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(documents) == 1 and documents[0].closed
    rendered = tracker.rendered
    await asyncio.sleep(0.1)
    assert tracker.rendered == rendered and tracker.alive == 0


async def test_memory_is_bounded_by_the_window_not_the_document(pdf: bytes) -> None:
    """tracemalloc sees numpy's buffers. The eager decoder held every page image for the whole request, so
    its peak was at least that of all pages decoded at once; a parse with a window of 4 stays far below."""
    page_bytes = 1190 * 1684 * 3
    config = settings(page_window=4)

    async def eager() -> None:
        doc = await inputs.load_document(Source(request(pdf).file, 0), config)
        try:
            await asyncio.to_thread(list, doc.pages)
        finally:
            doc.close()

    async def peak(run: Any) -> int:
        tracemalloc.start()
        try:
            await run()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    all_pages = await peak(eager)
    windowed = await peak(lambda: parse(config, pdf))
    print(f"peak traced memory, {PAGES} A4 pages at scale 2: all pages decoded {all_pages / 2**20:.0f} MiB, "
          f"parsed with a window of 4: {windowed / 2**20:.0f} MiB")
    assert all_pages > PAGES * page_bytes
    assert windowed < 8 * page_bytes                # the window's pages and their crops, not the document's
    assert windowed < all_pages / 4


async def test_pages_are_rendered_just_ahead_of_the_layout_model(
        pdf: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering the whole window at once would only take CPU from other requests' pages in layout."""
    tracker = PageTracker(monkeypatch)
    detector = BoxDetector(seconds_per_batch=0.01)
    ahead: list[int] = []
    detect = detector.detect

    def counting(pages: list[np.ndarray]) -> list[list[Detection]]:
        ahead.append(tracker.rendered - sum(detector.batches))   # rendered, not through layout yet
        return detect(pages)

    detector.detect = counting  # type: ignore[method-assign]
    await parse(settings(page_window=8, layout_batch_size=2), pdf, FakeVLM(seconds=0.05), detector)
    assert tracker.rendered == PAGES
    assert max(ahead) <= 2 + 1                      # a layout batch and one page more
    assert max(detector.batches) == 2


async def test_requests_sharing_a_log_id_are_separate_owners(pdf: bytes) -> None:
    """A failure or a cancel stops its owner's work: two requests a client sent with one logId must not be
    one owner."""
    vlm = FakeVLM()
    engine = Engine(settings(), detector=BoxDetector(), vlm=vlm)  # type: ignore[arg-type]
    try:
        short = long_pdf(2)
        await asyncio.gather(engine.parse(request(short), "same"), engine.parse(request(short), "same"))
    finally:
        await engine.aclose()
    assert len(vlm.owners) == 2
    assert all(owner.startswith("same") for owner in vlm.owners)   # the logId stays readable in logs


async def test_restructure_pages_in_a_request_equals_restructuring_its_answer(pdf: bytes) -> None:
    """`restructurePages` restructures the blocks before assembling; the answer is what `/restructure-pages`
    makes of the same request's plain answer."""
    short = long_pdf(3)

    async def run(**fields: object) -> dict[str, Any]:
        engine = Engine(settings(), detector=BoxDetector(), vlm=FakeVLM())  # type: ignore[arg-type]
        try:
            return await engine.parse(request(short, formatBlockContent=True, **fields), "req-r")
        finally:
            await engine.aclose()

    plain, restructured = await run(), await run(restructurePages=True)
    pages = [(p["prunedResult"], p["markdown"].get("images")) for p in plain["layoutParsingResults"]]
    expected = restructure_pages(pages, merge_tables=True, relevel_titles=True)
    got = restructured["layoutParsingResults"]
    assert [g["prunedResult"] for g in got] == [e["prunedResult"] for e in expected]
    assert [g["markdown"] for g in got] == [e["markdown"] for e in expected]
    blocks = [b for g in got for b in g["prunedResult"]["parsing_res_list"]]
    assert [b["global_block_id"] for b in blocks] == list(range(9))


async def test_page_ranges_parse_the_pages_they_select_in_page_order() -> None:
    pdf = long_pdf(6)
    engine = Engine(settings(), detector=BoxDetector(), vlm=FakeVLM())  # type: ignore[arg-type]
    try:
        result = await engine.parse(request(pdf, pageRanges="5-9,2"), "req-ranges")
    finally:
        await engine.aclose()
    widths = [p["prunedResult"]["width"] for p in result["layoutParsingResults"]]
    assert widths == [math.ceil((595 + index) * 2) for index in (1, 4, 5)]   # pages 2, 5 and 6 of 6
    assert result["dataInfo"]["numPages"] == 3
    assert [p["width"] for p in result["dataInfo"]["pages"]] == widths


@pytest.mark.parametrize("ranges,refusal", [("7", "asks for page 7, but the document has 6 pages"),
                                            ("0-2", "is not a range of pages from 1 up")])
async def test_page_ranges_outside_the_document_are_refused(ranges: str, refusal: str) -> None:
    engine = Engine(settings(), detector=BoxDetector(), vlm=FakeVLM())  # type: ignore[arg-type]
    try:
        body = {"file": base64.b64encode(long_pdf(6)).decode(), "fileType": 0, "pageRanges": ranges}
        envelope = await engine.layout_parsing(json.dumps(body))
    finally:
        await engine.aclose()
    assert envelope["errorCode"] == 422 and refusal in envelope["errorMsg"]
