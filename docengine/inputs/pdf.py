"""PDFs: opened and checked up front (page count, encryption, each page's size and so its render scale), each
page rendered when read, one PDFium call at a time."""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from docengine.errors import InvalidInputError
from docengine.inputs.lazy import LazyPages
from docengine.settings import EngineSettings
from docengine.types import DecodedDocument

MIN_RENDER_SCALE = 0.1
T = TypeVar("T")

# PDFium must never be called from two threads at once, not even for different documents. Re-entrant, so that
# a PDF collected as garbage while its thread holds the lock can still be closed (see `PdfPages`).
pdfium_lock = threading.RLock()
# PDF pages render here: PDFium runs one call at a time anyway, so renders waiting for their turn hold no
# thread of the default pool, which the other CPU work of every request shares.
_pdfium_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdfium")


def fit_render_scale(
    width_pt: float, height_pt: float, scale: float, max_pixels: int, min_scale: float = MIN_RENDER_SCALE,
) -> float | None:
    """The largest scale up to `scale` at which a page renders to at most `max_pixels` (found by bisection,
    as PaddleX does), or None when even `min_scale` is too large."""
    def pixels(s: float) -> int:
        return math.ceil(width_pt * s) * math.ceil(height_pt * s)   # the bitmap size pypdfium2 allocates

    if pixels(scale) <= max_pixels:
        return scale
    if pixels(min_scale) > max_pixels:
        return None
    lower, upper = min_scale, min(scale, math.sqrt(max_pixels / (width_pt * height_pt)))
    for _ in range(40):
        middle = (lower + upper) / 2
        lower, upper = (middle, upper) if pixels(middle) <= max_pixels else (lower, middle)
    return lower



class PdfPages(LazyPages):
    """A PDF's pages, each rendered when read, under the PDFium lock, at the scale fitted to it up front; the
    bitmap is copied out and freed at once."""

    executor = _pdfium_thread

    def __init__(self, doc: pdfium.PdfDocument, scales: list[float]) -> None:
        # The finalizer holds the document, never `self`: it closes it under the lock even when this object
        # is only collected as garbage, before pypdfium2's own finalizer could close it without the lock.
        super().__init__(len(scales), weakref.finalize(self, _close_pdf, doc))
        self._doc = doc
        self._scales = scales

    def _decode(self, index: int) -> np.ndarray:
        return self.with_page(index, _render)

    def with_page(self, index: int, read: Callable[[pdfium.PdfPage, float], T]) -> T:
        """`read(page, render scale)` under the PDFium lock, for what else a page holds (its text layer)."""
        with pdfium_lock:
            if self.closed:
                raise ValueError("the PDF is closed")
            try:
                page = self._doc[index]
            except pdfium.PdfiumError as exc:
                raise InvalidInputError(f"page {index + 1} of the PDF cannot be loaded ({exc})") from None
            try:
                return read(page, self._scales[index])
            finally:
                page.close()


def _render(page: pdfium.PdfPage, scale: float) -> np.ndarray:
    bitmap = page.render(scale=scale, rev_byteorder=True)
    try:
        return bitmap.to_numpy().copy()   # RGB on white; copied out so the bitmap can be freed
    finally:
        bitmap.close()


def _close_pdf(doc: pdfium.PdfDocument) -> None:
    with pdfium_lock:
        doc.close()


def decode_pdf(data: bytes, settings: EngineSettings) -> DecodedDocument:
    """Open the PDF and check every page's size (read from the page tree, without loading the page), which
    fixes its render scale and the size of its image: pypdfium2 renders a page of w x h pt at scale s to a
    bitmap of ceil(w s) x ceil(h s) pixels. The pages are rendered when read (`PdfPages`)."""
    with pdfium_lock:
        doc = _open_pdf(data)
    pages: PdfPages | None = None
    try:
        with pdfium_lock:
            count = len(doc)
            if count == 0:
                raise InvalidInputError("the PDF has no pages")
            if count > settings.max_pages:
                raise InvalidInputError(
                    f"the PDF has {count} pages, over the limit of {settings.max_pages} pages")
            sizes = [_page_size(doc, index) for index in range(count)]
        scales = [_page_scale(size, index, settings) for index, size in enumerate(sizes)]
        pages = PdfPages(doc, scales)
    finally:
        if pages is None:
            _close_pdf(doc)
    info = [{"width": math.ceil(width * scale), "height": math.ceil(height * scale)}
            for (width, height), scale in zip(sizes, scales, strict=True)]
    return DecodedDocument(pages, {"numPages": count, "pages": info, "type": "pdf"})


def _open_pdf(data: bytes) -> pdfium.PdfDocument:
    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise InvalidInputError("the PDF is encrypted with a password; send it unprotected") from None
        raise InvalidInputError(f"the PDF is corrupt or truncated and cannot be opened ({exc})") from None
    try:
        doc.init_forms()   # so that filled-in form fields are drawn, as PaddleX does
    except pdfium.PdfiumError:
        pass
    return doc


def _page_size(doc: pdfium.PdfDocument, index: int) -> tuple[float, float]:
    """Width and height in pt as rendering sees them (rotation applied); the caller holds the lock."""
    try:
        width, height = doc.get_page_size(index)
    except pdfium.PdfiumError as exc:
        raise InvalidInputError(f"page {index + 1} of the PDF cannot be loaded ({exc})") from None
    return width, height


def _page_scale(size: tuple[float, float], index: int, settings: EngineSettings) -> float:
    width, height = size
    if not (width > 0 and height > 0):
        raise InvalidInputError(f"page {index + 1} of the PDF has no size ({width} x {height} pt)")
    scale = fit_render_scale(width, height, settings.pdf_render_scale, settings.max_page_pixels)
    if scale is None:
        raise InvalidInputError(
            f"page {index + 1} of the PDF ({width:.0f} x {height:.0f} pt) is too large: even at scale "
            f"{MIN_RENDER_SCALE} it exceeds the limit of {settings.max_page_pixels} pixels per page")
    return scale
