"""`docengine.inputs`: real PDFs and images made here, every limit, type inference, guarded URL fetching."""

from __future__ import annotations

import asyncio
import base64
import gc
import math
from collections.abc import Sequence

import numpy as np
import pymupdf
import pypdfium2 as pdfium
import pytest

from devkit.documents import b64, eager_page_sizes, encode_image, render_page
from docengine.errors import InvalidInputError
from docengine.inputs import decode_document, fit_render_scale, load_document, read_page, sniff_file_type
from docengine.inputs import pdf as pdf_module

from .conftest import A4_AT_2X, SETTINGS, colour_pdf, make_settings, refused, request

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
