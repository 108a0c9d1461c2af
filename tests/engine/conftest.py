"""What the engine's tests share: the input tests' settings, a 3-page PDF and a page as an RGB image; a mocked
VLM server and clients of it."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator, Callable

import numpy as np
import pymupdf
import pytest
import respx

from devkit.documents import render_page, sample_pdf
from docengine.errors import InvalidInputError
from docengine.inputs import decode_document
from docengine.recognition.client import VLMClient
from docengine.settings import EngineSettings
from docengine.types import Source
from tests.engine.mock_vlm import MODEL, URL_A


def make_settings(**overrides: object) -> EngineSettings:
    values: dict[str, object] = dict(
        max_pages=1000, max_page_pixels=178_956_970, max_file_bytes=50 * 1024 * 1024, pdf_render_scale=2.0,
        allow_private_urls=False, url_fetch_timeout=5.0)
    values.update(overrides)
    return EngineSettings(_env_file=None, **values)  # type: ignore[arg-type]


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


SETTINGS = make_settings()


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


PUBLIC_IP = "93.184.216.34"
A4_AT_2X = {"width": 1190, "height": 1684}

def request(file: str, file_type: int | None = None) -> Source:
    return Source(file, file_type)

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


@pytest.fixture
def router() -> respx.MockRouter:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def make_client(router: respx.MockRouter) -> AsyncIterator[Callable[..., VLMClient]]:
    clients: list[VLMClient] = []

    def make(urls: list[str] | None = None, **kw: object) -> VLMClient:
        kw.setdefault("backoff", 0.001)
        client = VLMClient(urls or [URL_A], MODEL, **kw)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
