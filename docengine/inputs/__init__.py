"""A request's `file` (Base64 or an http(s) URL) turned into RGB page images and the response's `dataInfo`.

Everything here handles untrusted bytes, so every limit is checked before the work it bounds: the decoded
size before decoding, the page count before rendering, the pixels of a page from its header before its
pixels are decoded. Each refusal is a 422 `InvalidInputError` that says what was wrong and the limit.

One module per job: `filetype` (what the bytes are), `pdf` and `raster` (decoding), `lazy` (pages decoded when
read); URLs are fetched by the `safefetch` package (with the guard against server-side request forgery).

TIFF: a TIFF of several frames is split into pages and reported as `{type: "tiff", numPages, pages}`; a
single-frame TIFF is an image, `{type: "image", width, height}`, as PaddleX reports it.

PDF pages and TIFF frames are decoded only when read (`LazyPages`, best through `read_page`), so that a
request holds the images of the pages it is working on, not of its whole document. What can be checked
without decoding pixels still is, up front: page count, encryption, corruption of the file's structure, each
page's size against the pixel limit (which fixes a PDF page's render scale) and so `dataInfo`. A page whose
own content turns out to be broken is refused when it is read, with the same 422.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

import httpx

from contract.page_ranges import PageRangeError, select_pages
from docengine.errors import InvalidInputError
from docengine.inputs.filetype import PDF, SUPPORTED, URL_SCHEME, resolve_type, sniff_file_type, sniff_format
from docengine.inputs.lazy import LazyPages, read_page
from docengine.inputs.pdf import PdfPages, decode_pdf, fit_render_scale, pdfium_lock
from docengine.inputs.raster import TiffPages, decode_image
from docengine.settings import EngineSettings
from docengine.types import DecodedDocument, Source
from safefetch import FetchError, FetchLimits, fetch_url

__all__ = ["LazyPages", "PdfPages", "TiffPages", "decode_document", "fetch_file", "fit_render_scale",
           "load_document", "pdfium_lock", "read_page", "sniff_file_type"]


async def load_document(
    source: Source, settings: EngineSettings, *, http: httpx.AsyncClient | None = None,
) -> DecodedDocument:
    """Fetch or Base64-decode the source's file, decode it into pages (CPU work in a worker thread) and keep
    the pages its `pageRanges` select."""
    file = source.file.strip()
    scheme = URL_SCHEME.match(file)
    if scheme is None:
        doc = await asyncio.to_thread(_decode_base64_document, file, source.file_type, settings)
    elif scheme.group(1).lower() not in ("http", "https"):
        what = "a data: URL prefix" if scheme.group(1).lower() == "data" else f"a {scheme.group(1)}: URL"
        raise InvalidInputError(f"file must be Base64 (without a data: prefix) or an http(s) URL, got {what}")
    else:
        data = await fetch_file(file, settings, http)
        doc = await asyncio.to_thread(decode_document, data, source.file_type, settings, source_hint=file)
    if source.page_ranges is None:
        return doc
    try:
        doc.selected = select_pages(source.page_ranges, len(doc.pages))
    except PageRangeError as exc:
        await asyncio.to_thread(doc.close)
        raise InvalidInputError(str(exc)) from None
    return doc


async def fetch_file(url: str, settings: EngineSettings, http: httpx.AsyncClient | None) -> bytes:
    limits = FetchLimits(timeout=settings.url_fetch_timeout, max_bytes=settings.max_file_bytes,
                         allow_private=settings.allow_private_urls)
    try:
        return await fetch_url(url, limits, http=http)
    except FetchError as exc:
        raise InvalidInputError(str(exc)) from None


def decode_document(
    data: bytes, file_type: int | None, settings: EngineSettings, *, source_hint: str | None = None,
) -> DecodedDocument:
    """Decode a file's bytes into pages. `source_hint` (a URL or file name) lends its extension when the
    bytes do not say what they are."""
    if not data:
        raise InvalidInputError("file is empty")
    if len(data) > settings.max_file_bytes:
        raise InvalidInputError(
            f"file is {len(data)} bytes, over the limit of {settings.max_file_bytes} bytes")
    fmt = sniff_format(data)
    kind = resolve_type(fmt, file_type, source_hint)
    if kind == PDF:
        return decode_pdf(data, settings)
    if fmt is None:
        raise InvalidInputError(f"unsupported image format; supported are {SUPPORTED}")
    return decode_image(data, fmt, settings)


def _decode_base64_document(file: str, file_type: int | None, settings: EngineSettings) -> DecodedDocument:
    return decode_document(_decode_base64(file, settings), file_type, settings)


def _decode_base64(file: str, settings: EngineSettings) -> bytes:
    text = "".join(file.split())   # line-wrapped Base64 is common
    if not text:
        raise InvalidInputError("file is empty")
    if len(text) // 4 * 3 - 2 > settings.max_file_bytes:
        raise InvalidInputError(
            f"file is about {len(text) // 4 * 3} bytes, over the limit of {settings.max_file_bytes} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(f"file is neither an http(s) URL nor valid Base64 ({exc})") from None
