"""A request's `file` (Base64 or an http(s) URL) turned into RGB page images and the response's `dataInfo`.

Everything here handles untrusted bytes, so every limit is checked before the work it bounds: the decoded
size before decoding, the page count before rendering, the pixels of a page from its header before its
pixels are decoded. Each refusal is a 422 `InvalidInputError` that says what was wrong and the limit.

File type: an explicit `fileType` must agree with the file's leading bytes. Without one, the leading bytes
decide when they are recognisable (URLs often carry no or a wrong extension) and the URL's extension is
the fallback; PaddleX refuses Base64 without `fileType`, this server infers it instead.

TIFF: every TIFF, single-page too, is reported as `{type: "tiff", numPages, pages}` and split into pages.

PDF pages and TIFF frames are decoded only when read (`LazyPages`, best through `read_page`), so that a
request holds the images of the pages it is working on, not of its whole document. What can be checked
without decoding pixels still is, up front: page count, encryption, corruption of the file's structure, each
page's size against the pixel limit (which fixes a PDF page's render scale) and so `dataInfo`. A page whose
own content turns out to be broken is refused when it is read, with the same 422.

URLs are fetched hop by hop: each host is resolved and refused if any of its addresses is not public
(unless `allow_private_urls`). A DNS answer that changes after the check cannot reach an internal service:
plain http connects to the checked address itself, and https verifies the host name's certificate before
any request is sent.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import ipaddress
import math
import mimetypes
import operator
import re
import socket
import threading
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import overload
from urllib.parse import urlsplit

import httpx
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import ExifTags, Image, ImageOps

from contract.models import LayoutParsingRequest
from docengine.errors import InvalidInputError
from docengine.settings import EngineSettings
from docengine.types import DecodedDocument

PDF, IMAGE = 0, 1
MIN_RENDER_SCALE = 0.1
MAX_REDIRECTS = 5

# PDFium must never be called from two threads at once, not even for different documents. Re-entrant, so that
# a PDF collected as garbage while its thread holds the lock can still be closed (see `PdfPages`).
pdfium_lock = threading.RLock()
# PDF pages render here: PDFium runs one call at a time anyway, so renders waiting for their turn hold no
# thread of the default pool, which the other CPU work of every request shares.
_pdfium_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdfium")

_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),   # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)
_FORMAT_NAMES = {"PDF": "a PDF", "PNG": "a PNG image", "JPEG": "a JPEG image", "BMP": "a BMP image",
                 "WEBP": "a WebP image", "TIFF": "a TIFF image"}
_SUPPORTED = "PDF, PNG, JPEG, BMP, WebP or TIFF"
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")   # Base64 never contains ':'
_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


# --- entry points -------------------------------------------------------------------------------------------


async def load_document(
    req: LayoutParsingRequest, settings: EngineSettings, *, http: httpx.AsyncClient | None = None,
) -> DecodedDocument:
    """Fetch or Base64-decode `req.file` and decode it into pages; the CPU work runs in a worker thread."""
    file = req.file.strip()
    scheme = _URL_SCHEME.match(file)
    if scheme is None:
        return await asyncio.to_thread(_decode_base64_document, file, req.file_type, settings)
    if scheme.group(1).lower() not in ("http", "https"):
        what = "a data: URL prefix" if scheme.group(1).lower() == "data" else f"a {scheme.group(1)}: URL"
        raise InvalidInputError(f"file must be Base64 (without a data: prefix) or an http(s) URL, got {what}")
    data = await fetch_url(file, settings, http=http)
    return await asyncio.to_thread(decode_document, data, req.file_type, settings, source_hint=file)


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
    fmt = _sniff_format(data)
    kind = _resolve_type(fmt, file_type, source_hint)
    if kind == PDF:
        return _decode_pdf(data, settings)
    if fmt is None:
        raise InvalidInputError(f"unsupported image format; supported are {_SUPPORTED}")
    return _decode_image(data, fmt, settings)


async def read_page(doc: DecodedDocument, index: int) -> np.ndarray:
    """Page `index` of `doc`, decoded in a worker thread when it is not yet. One page of a document is decoded
    at a time, so that the threads serve the documents in flight in turn rather than the longest one first."""
    pages = doc.pages
    if not isinstance(pages, LazyPages):
        return pages[index]
    async with pages.turn:
        return await asyncio.get_running_loop().run_in_executor(pages.executor, pages.__getitem__, index)


def sniff_file_type(data: bytes) -> int | None:
    """0 for a PDF, 1 for a supported image (PNG, JPEG, BMP, WebP, TIFF), None when the bytes are neither."""
    fmt = _sniff_format(data)
    return None if fmt is None else PDF if fmt == "PDF" else IMAGE


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


# --- file type ----------------------------------------------------------------------------------------------


def _sniff_format(data: bytes) -> str | None:
    for magic, fmt in _IMAGE_MAGIC:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if b"%PDF-" in data[:1024]:   # PDF readers accept a header anywhere in the first kilobyte
        return "PDF"
    return None


def _resolve_type(fmt: str | None, file_type: int | None, source_hint: str | None) -> int:
    detected = None if fmt is None else PDF if fmt == "PDF" else IMAGE
    if file_type is None:
        kind = detected if detected is not None else _type_from_name(source_hint)
        if kind is None:
            raise InvalidInputError(
                f"file type cannot be determined; send fileType (0 = PDF, 1 = image) or a {_SUPPORTED} file")
        return kind
    if file_type not in (PDF, IMAGE):
        raise InvalidInputError(f"fileType must be 0 (PDF) or 1 (image), got {file_type}")
    if fmt is not None and detected != file_type:
        said = "0 (PDF)" if file_type == PDF else "1 (image)"
        raise InvalidInputError(f"fileType is {said}, but the file is {_FORMAT_NAMES[fmt]}")
    return file_type


def _type_from_name(name: str | None) -> int | None:
    if not name:
        return None
    path = urlsplit(name).path if _URL_SCHEME.match(name) else name
    mime = mimetypes.guess_type(path.rsplit("/", 1)[-1])[0] or ""
    return PDF if mime == "application/pdf" else IMAGE if mime.startswith("image/") else None


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


# --- pages decoded when read -------------------------------------------------------------------------------


class LazyPages(Sequence[np.ndarray]):
    """The pages of an open file, each decoded when it is read (from any thread); `close()` closes the file,
    as garbage collection does when it was not called. Reading a page again decodes it again."""

    executor: Executor | None = None   # where `read_page` decodes: None is asyncio's default pool

    def __init__(self, count: int, closer: weakref.finalize) -> None:
        self._count = count
        self._closer = closer
        self.turn = asyncio.Lock()     # `read_page`: one decode of this document at a time

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        position = operator.index(index)
        if position < 0:
            position += self._count
        if not 0 <= position < self._count:
            raise IndexError(f"page index {index} out of range for {self._count} pages")
        return self._decode(position)

    @property
    def closed(self) -> bool:
        return not self._closer.alive

    def close(self) -> None:
        self._closer()

    def _decode(self, index: int) -> np.ndarray:
        raise NotImplementedError


# --- PDF ----------------------------------------------------------------------------------------------------


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
        with pdfium_lock:
            if self.closed:
                raise ValueError("the PDF is closed")
            try:
                page = self._doc[index]
            except pdfium.PdfiumError as exc:
                raise InvalidInputError(f"page {index + 1} of the PDF cannot be loaded ({exc})") from None
            try:
                bitmap = page.render(scale=self._scales[index], rev_byteorder=True)
                try:
                    return bitmap.to_numpy().copy()   # RGB on white; copied out so the bitmap can be freed
                finally:
                    bitmap.close()
            finally:
                page.close()


def _close_pdf(doc: pdfium.PdfDocument) -> None:
    with pdfium_lock:
        doc.close()


def _decode_pdf(data: bytes, settings: EngineSettings) -> DecodedDocument:
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


# --- images -------------------------------------------------------------------------------------------------


def _decode_image(data: bytes, fmt: str, settings: EngineSettings) -> DecodedDocument:
    """Decode with Pillow. Sizes are checked from the header before any pixel is decoded, including Pillow's
    decompression-bomb threshold (`Image.MAX_IMAGE_PIXELS`). A TIFF's frames are decoded when read."""
    if fmt == "TIFF":
        return _decode_tiff(data, settings)
    with _decoding(fmt), Image.open(io.BytesIO(data), formats=[fmt]) as image:
        _check_image_size(image.size, 0, 1, settings)
        page = _to_rgb(image)
    height, width = page.shape[:2]
    return DecodedDocument([page], {"width": width, "height": height, "type": "image"})


class TiffPages(LazyPages):
    """A TIFF's frames, each decoded when read (one at a time: Pillow reads a frame by seeking to it).

    `sizes` (`dataInfo.pages`) starts as the frames' header sizes, which Pillow reports with the TIFF's own
    orientation tag applied; each decoded frame writes its actual size there, so once every page is read
    (as before any response) it is exact: an orientation given only in XMP turns the image but not the
    header's size."""

    def __init__(self, image: Image.Image, sizes: list[dict[str, int]]) -> None:
        super().__init__(len(sizes), weakref.finalize(self, image.close))
        self._image = image
        self._sizes = sizes
        self._lock = threading.Lock()

    def _decode(self, index: int) -> np.ndarray:
        with self._lock:
            if self.closed:
                raise ValueError("the TIFF is closed")
            with _decoding("TIFF", f"page {index + 1} of the image: "):
                self._image.seek(index)
                page = _to_rgb(self._image)
            self._sizes[index] = {"width": page.shape[1], "height": page.shape[0]}
            return page


def _decode_tiff(data: bytes, settings: EngineSettings) -> DecodedDocument:
    """Every frame is a page; the headers of all are read and checked here, their pixels decoded when read."""
    with _decoding("TIFF"):
        image = Image.open(io.BytesIO(data), formats=["TIFF"])
        try:
            count = getattr(image, "n_frames", 1)
            if count > settings.max_pages:
                raise InvalidInputError(
                    f"the TIFF has {count} pages, over the limit of {settings.max_pages} pages")
            sizes = []
            for index in range(count):
                image.seek(index)
                _check_image_size(image.size, index, count, settings)
                sizes.append({"width": image.width, "height": image.height})
        except BaseException:
            image.close()
            raise
    return DecodedDocument(TiffPages(image, sizes), {"numPages": count, "pages": sizes, "type": "tiff"})


@contextlib.contextmanager
def _decoding(fmt: str, where: str = "") -> Iterator[None]:
    """Pillow's failures on untrusted bytes as 422s: the file is bad, not the server."""
    try:
        yield
    except InvalidInputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidInputError(f"{where}image refused as a decompression bomb ({exc})") from None
    except Image.UnidentifiedImageError:
        raise InvalidInputError(f"the file starts like {_FORMAT_NAMES[fmt]} but its header cannot be read "
                                "(corrupt, or zero width or height)") from None
    except MemoryError:
        raise
    except Exception as exc:
        raise InvalidInputError(f"{where}{_FORMAT_NAMES[fmt]} that is corrupt or truncated ({exc})") from None


def _check_image_size(size: tuple[int, int], index: int, count: int, settings: EngineSettings) -> None:
    width, height = size
    where = f"page {index + 1} of the image" if count > 1 else "the image"
    if width <= 0 or height <= 0:
        raise InvalidInputError(f"{where} has no pixels ({width} x {height})")
    pixels = width * height
    if pixels > settings.max_page_pixels:
        raise InvalidInputError(f"{where} is {width} x {height} = {pixels} pixels, over the limit of "
                                f"{settings.max_page_pixels} pixels per page")
    bomb = Image.MAX_IMAGE_PIXELS
    if bomb is not None and pixels > bomb:
        raise InvalidInputError(f"{where} is {width} x {height} = {pixels} pixels, refused as a possible "
                                f"decompression bomb (over {bomb} pixels)")


def _to_rgb(image: Image.Image) -> np.ndarray:
    """RGB uint8 (H, W, 3): EXIF orientation applied, transparency composited on white, deep or odd colour
    modes scaled or converted."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in _HIGH_DEPTH_MODES:
        gray = np.asarray(image)
        gray = np.clip(gray, 0, 255) if image.mode == "F" else np.clip(gray, 0, 65535) / 257.0
        return np.repeat(np.rint(gray).astype(np.uint8)[:, :, None], 3, axis=2)
    if image.has_transparency_data:
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
        canvas.alpha_composite(image.convert("RGBA"))
        image = canvas
    return np.array(image if image.mode == "RGB" else image.convert("RGB"))


# --- URLs ---------------------------------------------------------------------------------------------------


async def fetch_url(url: str, settings: EngineSettings, *, http: httpx.AsyncClient | None = None) -> bytes:
    """GET `url` with redirects followed by hand (each hop checked), under one overall deadline and with the
    body capped at `max_file_bytes`."""
    client = http or httpx.AsyncClient(timeout=settings.url_fetch_timeout, follow_redirects=False)
    try:
        return await asyncio.wait_for(_fetch(client, url, settings), settings.url_fetch_timeout)
    except (TimeoutError, httpx.TimeoutException):
        raise InvalidInputError(
            f"fetching the file timed out after {settings.url_fetch_timeout:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise InvalidInputError(f"fetching the file failed: {type(exc).__name__}: {exc}") from None
    finally:
        if http is None:
            await client.aclose()


async def _fetch(client: httpx.AsyncClient, url: str, settings: EngineSettings) -> bytes:
    target = _parse_url(url)
    for _ in range(MAX_REDIRECTS + 1):
        request_url, headers = await _pin(target, settings)
        async with client.stream("GET", request_url, headers=headers, follow_redirects=False,
                                 timeout=settings.url_fetch_timeout) as response:
            if response.has_redirect_location:
                target = _parse_url(str(target.join(response.headers["location"])))
                continue
            if not response.is_success:
                raise InvalidInputError(f"fetching the file failed: {target.host} answered HTTP "
                                        f"{response.status_code} {response.reason_phrase}".rstrip())
            return await _read_capped(response, settings.max_file_bytes)
    raise InvalidInputError(f"fetching the file failed: more than {MAX_REDIRECTS} redirects")


def _parse_url(url: str) -> httpx.URL:
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidInputError("only http(s) URLs with a host name or address can be fetched")
    return parsed


async def _pin(url: httpx.URL, settings: EngineSettings) -> tuple[httpx.URL, dict[str, str]]:
    """The URL to request and its extra headers, after checking every address of its host. Plain http
    goes to the checked address, with the host name in the Host header."""
    if settings.allow_private_urls:
        return url, {}
    host = url.raw_host.decode("ascii")
    addresses = await _resolve(host, url.port or (443 if url.scheme == "https" else 80))
    refused = [a for a in addresses if not _is_public(a)]
    if refused:
        raise InvalidInputError(f"URL host {url.host} resolves to the non-public address {refused[0]}; "
                                "only public addresses may be fetched")
    if url.scheme == "https" or _is_ip_literal(host):
        return url, {}
    return url.copy_with(host=str(addresses[0])), {"Host": url.netloc.decode("ascii")}


async def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if _is_ip_literal(host):
        return [ipaddress.ip_address(host)]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInputError(f"URL host {host} cannot be resolved ({exc})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise InvalidInputError(f"URL host {host} has no addresses")
    return addresses


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return _is_public(embedded)
    return address.is_global and not (
        address.is_loopback or address.is_private or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified)


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise InvalidInputError(f"the file at the URL is {declared} bytes, over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise InvalidInputError(f"the file at the URL is over the limit of {limit} bytes")
    return bytes(body)
