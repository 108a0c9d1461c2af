"""`docengine.inputs`: real PDFs and images made here, every limit, type inference, guarded URL fetching."""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import math
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator, Sequence

import httpx
import numpy as np
import pymupdf
import pypdfium2 as pdfium
import pytest
import respx
from PIL import Image, TiffImagePlugin

from docengine.errors import InvalidInputError
from docengine.inputs import (
    decode_document,
    fit_render_scale,
    load_document,
    raster,
    read_page,
    sniff_file_type,
)
from docengine.inputs import pdf as pdf_module
from docengine.settings import EngineSettings
from docengine.types import Source
from tests.documents import eager_page_sizes, encode_image, multipage_tiff, render_page, sample_pdf

PUBLIC_IP = "93.184.216.34"
A4_AT_2X = {"width": 1190, "height": 1684}


def make_settings(**overrides: object) -> EngineSettings:
    values: dict[str, object] = dict(
        max_pages=1000, max_page_pixels=178_956_970, max_file_bytes=50 * 1024 * 1024, pdf_render_scale=2.0,
        allow_private_urls=False, url_fetch_timeout=5.0)
    values.update(overrides)
    return EngineSettings(_env_file=None, **values)  # type: ignore[arg-type]


SETTINGS = make_settings()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def request(file: str, file_type: int | None = None) -> Source:
    return Source(file, file_type)


def decode_all(data: bytes, file_type: int | None, settings: EngineSettings, **kw: str) -> list[np.ndarray]:
    """Every page decoded: up front, or (PDF pages, TIFF frames) when read."""
    doc = decode_document(data, file_type, settings, **kw)
    try:
        return list(doc.pages)
    finally:
        doc.close()


def refused(data: bytes, file_type: int | None = None, settings: EngineSettings = SETTINGS, **kw: str) -> str:
    """The 422 of a file refused, up front or when one of its pages is read."""
    with pytest.raises(InvalidInputError) as info:
        decode_all(data, file_type, settings, **kw)
    assert info.value.status == 422
    return info.value.message


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR (valid CRC) declares `width` x `height`; its pixel data is a few bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b""))


def colour_pdf() -> bytes:
    """One A4 page with a pure red square at (100, 100)-(200, 200) pt, to check channel order."""
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.draw_rect(pymupdf.Rect(100, 100, 200, 200), color=(1, 0, 0), fill=(1, 0, 0))
    data = doc.tobytes()
    doc.close()
    return data


@pytest.fixture(scope="module")
def pdf3() -> bytes:
    return sample_pdf(3)[0]


@pytest.fixture(scope="module")
def page_rgb() -> np.ndarray:
    """A real page (text, table) at 36 dpi with a coloured patch, as image input."""
    data, _ = sample_pdf(1)
    rgb = render_page(data, 0, dpi=36)
    rgb[10:30, 10:50] = (200, 30, 60)
    return rgb


# --- PDFs -------------------------------------------------------------------------------------------------


async def test_multipage_pdf_renders_every_page_at_scale_2(pdf3: bytes) -> None:
    doc = await load_document(request(b64(pdf3), 0), SETTINGS)
    assert doc.data_info == {"numPages": 3, "pages": [A4_AT_2X] * 3, "type": "pdf"}
    assert len(doc.pages) == 3
    for page in doc.pages:
        assert page.shape == (1684, 1190, 3) and page.dtype == np.uint8 and page.flags.c_contiguous
    reference = render_page(pdf3, 1, dpi=144)      # pymupdf at the same scale
    assert np.abs(doc.pages[1].astype(int) - reference.astype(int)).mean() < 3
    assert (doc.pages[0] < 128).any() and np.median(doc.pages[0]) == 255    # black text on white


def test_pdf_pages_are_rgb() -> None:
    page = decode_document(colour_pdf(), 0, SETTINGS).pages[0]
    assert tuple(page[300, 300]) == (255, 0, 0)      # inside the red square (pt 150 at scale 2)
    assert tuple(page[10, 10]) == (255, 255, 255)


def test_pdf_type_inferred_from_bytes(pdf3: bytes) -> None:
    assert decode_document(pdf3, None, SETTINGS).data_info["type"] == "pdf"


def test_encrypted_pdf_is_refused(pdf3: bytes) -> None:
    with pymupdf.open(stream=pdf3, filetype="pdf") as doc:
        locked = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")
        owner_only = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner")
    assert "password" in refused(locked, 0)
    assert decode_document(owner_only, 0, SETTINGS).data_info["numPages"] == 3   # opens without a password


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_truncated_pdf_is_refused(pdf3: bytes, keep: float) -> None:
    assert "corrupt or truncated" in refused(pdf3[: int(len(pdf3) * keep)], 0)


def test_page_limit_is_checked_before_rendering(pdf3: bytes) -> None:
    message = refused(pdf3, 0, make_settings(max_pages=2))
    assert "3 pages" in message and "limit of 2" in message


def test_render_scale_is_lowered_by_bisection_to_fit_the_pixel_limit(pdf3: bytes) -> None:
    limit = 200_000
    doc = decode_document(pdf3, 0, make_settings(max_page_pixels=limit))
    height, width = doc.pages[0].shape[:2]
    assert width * height <= limit
    assert doc.data_info["pages"][0] == {"width": width, "height": height}
    scale = fit_render_scale(595, 842, 2.0, limit)
    assert scale is not None and (width, height) == (math.ceil(595 * scale), math.ceil(842 * scale))
    # the largest that fits: a hair larger no longer does, and the ideal area is nearly used
    assert math.ceil(595 * (scale + 1e-6)) * math.ceil(842 * (scale + 1e-6)) > limit
    assert width * height > 0.99 * limit


def test_render_scale_is_kept_when_it_fits_and_refused_below_the_minimum(pdf3: bytes) -> None:
    assert fit_render_scale(595, 842, 2.0, 178_956_970) == 2.0
    assert fit_render_scale(595, 842, 2.0, 1000) is None          # 60 x 85 at scale 0.1
    message = refused(pdf3, 0, make_settings(max_page_pixels=1000))
    assert "too large" in message and "1000 pixels" in message


async def test_concurrent_pdfs_render_safely(pdf3: bytes) -> None:
    docs = await asyncio.gather(*(load_document(request(b64(pdf3)), SETTINGS) for _ in range(4)))
    assert all(d.data_info["numPages"] == 3 for d in docs)
    pages = await asyncio.gather(*(read_page(d, i) for d in docs for i in range(3)))   # 12 renders at once
    assert all(np.array_equal(pages[n], pages[n % 3]) for n in range(12))
    for doc in docs:
        doc.close()


def test_pdf_pages_are_rendered_when_read(pdf3: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    scales: list[float] = []
    render = pdfium.PdfPage.render
    monkeypatch.setattr(pdfium.PdfPage, "render",
                        lambda page, **kw: scales.append(kw["scale"]) or render(page, **kw))
    doc = decode_document(pdf3, 0, SETTINGS)
    assert isinstance(doc.pages, Sequence) and len(doc.pages) == 3 and scales == []
    last = doc.pages[-1]
    assert scales == [2.0] and last.shape == (1684, 1190, 3)
    assert np.array_equal(doc.pages[2], last) and len(scales) == 2      # read again, rendered again
    assert [p.shape for p in doc.pages[:2]] == [(1684, 1190, 3)] * 2
    with pytest.raises(IndexError):
        doc.pages[3]
    doc.close()
    doc.close()
    with pytest.raises(ValueError, match="closed"):
        doc.pages[0]


def test_a_pdf_not_closed_is_closed_when_collected(pdf3: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[object] = []
    close = pdf_module._close_pdf
    monkeypatch.setattr(pdf_module, "_close_pdf", lambda doc: closed.append(doc) or close(doc))
    doc = decode_document(pdf3, 0, SETTINGS)
    doc.pages[0]
    del doc
    gc.collect()
    assert len(closed) == 1


def varied_pdf() -> bytes:
    """Pages of fractional sizes in pt, rotated, cropped, and large ones that the pixel limits shrink."""
    doc = pymupdf.open()
    sizes = [(595.2756, 841.8898), (612.3, 791.7), (100.5, 50.25), (1733.3, 911.1), (421.7, 595.1),
             (2000.0, 3000.0), (333.33, 444.44), (841.9, 595.3)]
    for index, (width, height) in enumerate(sizes):
        page = doc.new_page(width=width, height=height)
        page.insert_text((10, 20), f"page {index + 1}")
        page.set_rotation(90 * (index % 4))
        if index % 3 == 1:
            page.set_cropbox(pymupdf.Rect(3.3, 7.7, width * 0.8 + 0.37, height * 0.9 - 0.11))
    data = doc.tobytes()
    doc.close()
    return data


@pytest.mark.parametrize("scale,limit",
                         [(2.0, 178_956_970), (2.0, 300_000), (3.3, 1_234_567), (1.37, 90_000)])
def test_pdf_data_info_is_known_before_rendering_and_exact(scale: float, limit: int) -> None:
    pdf = varied_pdf()
    doc = decode_document(pdf, 0, make_settings(pdf_render_scale=scale, max_page_pixels=limit))
    info = doc.data_info
    assert info == {"numPages": 8, "pages": eager_page_sizes(pdf, scale, limit), "type": "pdf"}
    assert info["pages"] == [{"width": p.shape[1], "height": p.shape[0]} for p in doc.pages]
    assert all(s["width"] * s["height"] <= limit for s in info["pages"])
    doc.close()


# --- images -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,kwargs", [("PNG", {}), ("BMP", {}), ("WEBP", {"lossless": True})])
def test_lossless_images_decode_exactly(page_rgb: np.ndarray, fmt: str, kwargs: dict) -> None:
    doc = decode_document(encode_image(page_rgb, fmt, **kwargs), 1, SETTINGS)
    height, width = page_rgb.shape[:2]
    assert doc.data_info == {"width": width, "height": height, "type": "image"}
    assert np.array_equal(doc.pages[0], page_rgb)


def test_jpeg_decodes_close_to_the_original(page_rgb: np.ndarray) -> None:
    doc = decode_document(encode_image(page_rgb, "JPEG", quality=95), None, SETTINGS)
    assert doc.pages[0].shape == page_rgb.shape
    assert np.abs(doc.pages[0].astype(int) - page_rgb.astype(int)).mean() < 3


def test_multipage_tiff_is_split_into_pages(page_rgb: np.ndarray) -> None:
    frames = [page_rgb, page_rgb[:200, :150].copy(), np.full((50, 80, 3), 7, np.uint8)]
    doc = decode_document(multipage_tiff(frames), 1, SETTINGS)
    sizes = [{"width": f.shape[1], "height": f.shape[0]} for f in frames]
    assert doc.data_info == {"numPages": 3, "pages": sizes, "type": "tiff"}
    assert all(np.array_equal(got, want) for got, want in zip(doc.pages, frames, strict=True))


def test_tiff_frames_are_decoded_when_read(page_rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[tuple[int, int]] = []
    to_rgb = raster._to_rgb
    monkeypatch.setattr(raster, "_to_rgb", lambda image: decoded.append(image.size) or to_rgb(image))
    frames = [page_rgb, page_rgb[:200, :150].copy(), np.full((50, 80, 3), 7, np.uint8)]
    doc = decode_document(multipage_tiff(frames), 1, SETTINGS)
    assert len(doc.pages) == 3 and decoded == []
    assert np.array_equal(doc.pages[2], frames[2]) and np.array_equal(doc.pages[0], frames[0])  # seeks back
    assert decoded == [(80, 50), (page_rgb.shape[1], page_rgb.shape[0])]
    doc.close()
    with pytest.raises(ValueError, match="closed"):
        doc.pages[1]


def test_a_damaged_tiff_frame_is_refused_when_read(page_rgb: np.ndarray) -> None:
    data = encode_image(page_rgb, "TIFF")
    doc = decode_document(data[: len(data) // 2], 1, SETTINGS)     # the header is whole, the pixels are not
    assert doc.data_info["numPages"] == 1
    with pytest.raises(InvalidInputError, match="page 1 of the image: a TIFF image that is corrupt or trunc"):
        doc.pages[0]


def test_tiff_data_info_is_the_size_of_the_decoded_frames() -> None:
    """Pillow turns a TIFF frame's header size by the TIFF orientation tag, but not by an orientation given
    only in XMP (which decoding applies): such a frame's size is known once it is decoded."""
    frames = [Image.fromarray(np.zeros(shape, np.uint8)) for shape in ((20, 40, 3), (30, 10, 3))]
    tag = TiffImagePlugin.ImageFileDirectory_v2()
    tag[274] = 6                                     # orientation: turned 90 degrees
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:], tiffinfo=tag)
    doc = decode_document(buf.getvalue(), 1, SETTINGS)
    turned = [{"width": 20, "height": 40}, {"width": 30, "height": 10}]
    assert doc.data_info["pages"] == turned
    assert [{"width": p.shape[1], "height": p.shape[0]} for p in doc.pages] == turned

    xmp = TiffImagePlugin.ImageFileDirectory_v2()
    xmp[700] = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/">'
                b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
                b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/>'
                b"</rdf:RDF></x:xmpmeta>")
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", tiffinfo=xmp)
    doc = decode_document(buf.getvalue(), 1, SETTINGS)
    page = doc.pages[0]
    assert page.shape == (40, 20, 3) and doc.data_info["pages"] == [{"width": 20, "height": 40}]


def test_single_page_tiff_is_reported_as_tiff(page_rgb: np.ndarray) -> None:
    doc = decode_document(encode_image(page_rgb, "TIFF"), None, SETTINGS)
    assert doc.data_info["type"] == "tiff" and doc.data_info["numPages"] == 1


def test_tiff_page_limit(page_rgb: np.ndarray) -> None:
    assert "3 pages" in refused(multipage_tiff([page_rgb] * 3), 1, make_settings(max_pages=2))


def test_exif_orientation_is_applied() -> None:
    stored = np.zeros((20, 40, 3), np.uint8)    # 40 wide, 20 high; marker in the stored top-left corner
    stored[:5, :5] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6                             # display rotated 90 degrees clockwise
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG", quality=95, exif=exif.tobytes())
    doc = decode_document(buf.getvalue(), 1, SETTINGS)
    assert doc.data_info == {"width": 20, "height": 40, "type": "image"}
    page = doc.pages[0]
    assert page[2, 17, 0] > 200 and page[2, 17, 1] < 60       # the marker is now top-right
    assert page[37, 2].max() < 60


def test_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((10, 30, 4), np.uint8)
    rgba[:, :10] = (255, 0, 0, 0)       # transparent red -> white
    rgba[:, 10:20] = (0, 0, 255, 255)   # opaque blue stays
    rgba[:, 20:] = (0, 0, 0, 128)       # half-transparent black -> mid grey
    page = decode_document(encode_image(rgba, "PNG"), 1, SETTINGS).pages[0]
    assert page.shape == (10, 30, 3)
    assert tuple(page[5, 5]) == (255, 255, 255)
    assert tuple(page[5, 15]) == (0, 0, 255)
    assert all(abs(int(v) - 127) <= 2 for v in page[5, 25])


def _save(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_colour_modes_become_rgb_uint8() -> None:
    grey16 = Image.fromarray(np.array([[0, 32896, 65535]], np.uint16))
    assert grey16.mode.startswith("I;16")
    page = decode_document(_save(grey16, "PNG"), 1, SETTINGS).pages[0]
    assert page.dtype == np.uint8 and page[0].tolist() == [[0, 0, 0], [128, 128, 128], [255, 255, 255]]

    palette = Image.new("P", (4, 1))
    palette.putpalette([0, 0, 0, 0, 200, 0])
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    page = decode_document(_save(palette, "PNG", transparency=0), 1, SETTINGS).pages[0]
    assert page[0].tolist() == [[255, 255, 255], [0, 200, 0], [255, 255, 255], [255, 255, 255]]

    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))     # red in CMYK
    page = decode_document(_save(cmyk, "JPEG", quality=95), 1, SETTINGS).pages[0]
    assert page.shape == (8, 8, 3) and page[4, 4, 0] > 200 and page[4, 4, 1] < 60

    for mode, value in (("L", 90), ("1", 1), ("LA", (90, 255))):
        page = decode_document(_save(Image.new(mode, (3, 2), value), "PNG"), 1, SETTINGS).pages[0]
        assert page.shape == (2, 3, 3) and page.dtype == np.uint8 and len(np.unique(page)) == 1


def test_pixel_limit_is_checked_from_the_header_without_decoding() -> None:
    started = time.perf_counter()
    message = refused(png_header(30_000, 30_000), 1)         # 900 M pixels declared, a few bytes of data
    assert "decompression bomb" in message
    message = refused(png_header(2000, 2000), 1, make_settings(max_page_pixels=1_000_000))
    assert "2000 x 2000 = 4000000 pixels" in message and "limit of 1000000" in message
    assert time.perf_counter() - started < 0.5


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_is_refused_even_under_the_page_limit() -> None:
    roomy = make_settings(max_page_pixels=10**9)
    assert "decompression bomb" in refused(png_header(10_000, 10_000), 1, roomy)


def test_real_image_over_the_pixel_limit(page_rgb: np.ndarray) -> None:
    assert "per page" in refused(encode_image(page_rgb, "PNG"), 1, make_settings(max_page_pixels=5000))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "BMP"])
def test_truncated_images_are_refused(page_rgb: np.ndarray, fmt: str) -> None:
    data = encode_image(page_rgb, fmt)
    message = refused(data[: len(data) // 2], 1)
    assert "corrupt or truncated" in message or "cannot be read" in message


def test_zero_size_image_is_refused() -> None:
    assert "zero width or height" in refused(png_header(0, 10), 1)


# --- file type --------------------------------------------------------------------------------------------


def test_sniff_file_type(pdf3: bytes, page_rgb: np.ndarray) -> None:
    assert sniff_file_type(pdf3) == 0
    assert sniff_file_type(b"\n\n%PDF-1.7 with junk before the header") == 0
    for fmt in ("PNG", "JPEG", "BMP", "WEBP", "TIFF"):
        assert sniff_file_type(encode_image(page_rgb, fmt)) == 1, fmt
    assert sniff_file_type(encode_image(page_rgb, "GIF")) is None
    assert sniff_file_type(b"hello") is None and sniff_file_type(b"") is None


def test_file_type_contradicting_the_bytes(pdf3: bytes, page_rgb: np.ndarray) -> None:
    assert refused(encode_image(page_rgb, "PNG"), 0) == "fileType is 0 (PDF), but the file is a PNG image"
    assert refused(pdf3, 1) == "fileType is 1 (image), but the file is a PDF"


def test_unsupported_or_unknown_formats(page_rgb: np.ndarray) -> None:
    gif = encode_image(page_rgb, "GIF")
    assert "unsupported image format" in refused(gif, 1)
    assert "cannot be determined" in refused(gif, None)
    assert "cannot be determined" in refused(b"plain text", None, source_hint="https://x.test/notes.txt")
    # the URL's extension is the fallback when the bytes say nothing
    assert "PDF is corrupt" in refused(b"plain text", None, source_hint="https://x.test/a/report.pdf?v=1")
    assert "unsupported image format" in refused(b"plain text", None, source_hint="scan.gif")


# --- Base64 -----------------------------------------------------------------------------------------------


async def test_base64_with_line_breaks_is_accepted(page_rgb: np.ndarray) -> None:
    wrapped = "  " + base64.encodebytes(encode_image(page_rgb, "PNG")).decode() + "\n"
    assert "\n" in wrapped.strip()
    doc = await load_document(request(wrapped), SETTINGS)
    assert np.array_equal(doc.pages[0], page_rgb)


@pytest.mark.parametrize("file,expected", [
    ("", "file is empty"),
    ("  \n ", "file is empty"),
    ("not base64!", "nor valid Base64"),
    ("iVBORw0KGgo", "nor valid Base64"),                          # bad padding
    ("data:application/pdf;base64,JVBERi0=", "without a data: prefix"),
    ("ftp://files.test/a.pdf", "http(s) URL"),
    ("file:///etc/passwd", "http(s) URL"),
    ("AAAA", "file type cannot be determined"),
])
async def test_bad_file_fields(file: str, expected: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        await load_document(request(file), SETTINGS)
    assert expected in info.value.message and info.value.status == 422


async def test_decoded_size_limit_is_checked_before_decoding() -> None:
    settings = make_settings(max_file_bytes=1000)
    with pytest.raises(InvalidInputError, match="over the limit of 1000 bytes"):
        await load_document(request(b64(b"\0" * 2000)), settings)
    assert "over the limit of 1000 bytes" in refused(b"\0" * 1001, None, settings)


# --- URLs -------------------------------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Public names cannot be resolved offline: answer for *.test names, leave the rest (localhost) real."""
    records: dict[str, list[str]] = {"docs.example.test": [PUBLIC_IP]}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and host.endswith(".test"):
            if host not in records:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                    for ip in records[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return records


@respx.mock
async def test_url_fetch_by_host_name(http: httpx.AsyncClient, fake_dns: dict, pdf3: bytes) -> None:
    # plain http connects to the checked address and names the host in the Host header
    route = respx.get(f"http://{PUBLIC_IP}/files/report.pdf").respond(200, content=pdf3)
    doc = await load_document(request("http://docs.example.test/files/report.pdf"), SETTINGS, http=http)
    assert doc.data_info["numPages"] == 3
    assert route.calls.last.request.headers["host"] == "docs.example.test"
    # https keeps the name, so that its certificate is verified
    respx.get("https://docs.example.test/files/report.pdf").respond(200, content=pdf3)
    doc = await load_document(request("https://docs.example.test/files/report.pdf"), SETTINGS, http=http)
    assert doc.data_info["numPages"] == 3


@respx.mock
async def test_url_fetch_with_its_own_client(page_rgb: np.ndarray) -> None:
    respx.get(f"https://{PUBLIC_IP}/scan").respond(200, content=encode_image(page_rgb, "PNG"))
    doc = await load_document(request(f"https://{PUBLIC_IP}/scan"), SETTINGS)
    assert doc.data_info["type"] == "image" and np.array_equal(doc.pages[0], page_rgb)


@respx.mock
async def test_redirects_are_checked_hop_by_hop(http: httpx.AsyncClient, page_rgb: np.ndarray) -> None:
    respx.get(f"http://{PUBLIC_IP}/a").respond(302, headers={"Location": "/b.png"})
    respx.get(f"http://{PUBLIC_IP}/b.png").respond(200, content=encode_image(page_rgb, "PNG"))
    doc = await load_document(request(f"http://{PUBLIC_IP}/a"), SETTINGS, http=http)
    assert doc.pages[0].shape == page_rgb.shape

    respx.get(f"http://{PUBLIC_IP}/evil").respond(302, headers={"Location": "http://127.0.0.1:8118/v1/models"})
    internal = respx.get("http://127.0.0.1:8118/v1/models").respond(200, content=b"%PDF-")
    with pytest.raises(InvalidInputError, match="non-public address 127.0.0.1"):
        await load_document(request(f"http://{PUBLIC_IP}/evil"), SETTINGS, http=http)
    assert not internal.called

    respx.get(f"http://{PUBLIC_IP}/file").respond(301, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(InvalidInputError, match="only http"):
        await load_document(request(f"http://{PUBLIC_IP}/file"), SETTINGS, http=http)

    loop = respx.get(f"http://{PUBLIC_IP}/loop").respond(302, headers={"Location": "/loop"})
    with pytest.raises(InvalidInputError, match="more than 5 redirects"):
        await load_document(request(f"http://{PUBLIC_IP}/loop"), SETTINGS, http=http)
    assert loop.call_count == 6


@respx.mock
async def test_url_size_cap(http: httpx.AsyncClient) -> None:
    settings = make_settings(max_file_bytes=1000)
    respx.get(f"http://{PUBLIC_IP}/declared.pdf").respond(200, content=b"%PDF-" + b"0" * 2000)
    with pytest.raises(InvalidInputError, match="2005 bytes, over the limit of 1000"):
        await load_document(request(f"http://{PUBLIC_IP}/declared.pdf"), settings, http=http)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"0" * 100

    respx.get(f"http://{PUBLIC_IP}/streamed.pdf").mock(
        side_effect=lambda _: httpx.Response(200, content=chunks()))   # no Content-Length
    with pytest.raises(InvalidInputError, match="over the limit of 1000 bytes"):
        await load_document(request(f"http://{PUBLIC_IP}/streamed.pdf"), settings, http=http)


@respx.mock
async def test_url_http_error_names_the_status(http: httpx.AsyncClient) -> None:
    respx.get(f"http://{PUBLIC_IP}/missing.pdf").respond(404)
    with pytest.raises(InvalidInputError, match="HTTP 404 Not Found"):
        await load_document(request(f"http://{PUBLIC_IP}/missing.pdf"), SETTINGS, http=http)


@respx.mock
async def test_url_timeouts(http: httpx.AsyncClient) -> None:
    respx.get(f"http://{PUBLIC_IP}/slow-connect").mock(side_effect=httpx.ConnectTimeout("timed out"))
    with pytest.raises(InvalidInputError, match="timed out after 5 s"):
        await load_document(request(f"http://{PUBLIC_IP}/slow-connect"), SETTINGS, http=http)

    async def drip() -> AsyncIterator[bytes]:
        while True:                      # each chunk in time, the whole body never
            await asyncio.sleep(0.05)
            yield b"0"

    respx.get(f"http://{PUBLIC_IP}/drip").mock(side_effect=lambda _: httpx.Response(200, content=drip()))
    started = time.perf_counter()
    with pytest.raises(InvalidInputError, match="timed out after 0.3 s"):
        await load_document(request(f"http://{PUBLIC_IP}/drip"), make_settings(url_fetch_timeout=0.3),
                            http=http)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/a.pdf",
    "http://10.1.2.3/a.pdf",
    "http://192.168.0.10/a.pdf",
    "http://169.254.169.254/latest/meta-data",
    "http://0.0.0.0/a.pdf",
    "http://224.0.0.1/a.pdf",
    "http://[::1]/a.pdf",
    "http://[fe80::1]/a.pdf",
    "http://[::ffff:127.0.0.1]/a.pdf",
    "http://[::ffff:10.0.0.1]/a.pdf",
    "http://localhost:8080/a.pdf",
])
@respx.mock
async def test_private_addresses_are_refused(http: httpx.AsyncClient, url: str) -> None:
    with pytest.raises(InvalidInputError, match="non-public address"):
        await load_document(request(url), SETTINGS, http=http)
    assert not respx.calls


@respx.mock
async def test_host_name_with_any_private_address_is_refused(http: httpx.AsyncClient, fake_dns: dict) -> None:
    fake_dns["mixed.example.test"] = [PUBLIC_IP, "10.0.0.7"]
    with pytest.raises(InvalidInputError, match="non-public address 10.0.0.7"):
        await load_document(request("http://mixed.example.test/a.pdf"), SETTINGS, http=http)
    with pytest.raises(InvalidInputError, match="cannot be resolved"):
        await load_document(request("http://nowhere.example.test/a.pdf"), SETTINGS, http=http)
    assert not respx.calls


@respx.mock
async def test_allow_private_urls(http: httpx.AsyncClient, page_rgb: np.ndarray) -> None:
    settings = make_settings(allow_private_urls=True)
    png = encode_image(page_rgb, "PNG")
    respx.get("http://127.0.0.1:9000/scan.png").respond(200, content=png)
    respx.get("http://localhost:9000/scan.png").respond(200, content=png)
    for url in ("http://127.0.0.1:9000/scan.png", "http://localhost:9000/scan.png"):
        doc = await load_document(request(url), settings, http=http)
        assert np.array_equal(doc.pages[0], page_rgb)
