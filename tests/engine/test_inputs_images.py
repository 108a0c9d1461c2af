"""Images decoded with Pillow: exact pixels, TIFF frames as pages, orientation, alpha, colour modes, and every
size checked from the header before a pixel is decoded."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from devkit.documents import encode_image, multipage_tiff
from docengine.errors import InvalidInputError
from docengine.inputs import decode_document, raster

from .conftest import SETTINGS, make_settings, png_header, refused

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
    data = multipage_tiff([page_rgb, page_rgb])
    with Image.open(io.BytesIO(data)) as tiff:
        tiff.seek(1)
        second_pixels = tiff.tag_v2[273][0]   # StripOffsets: both frames' headers come before this
    doc = decode_document(data[: second_pixels + 100], 1, SETTINGS)
    assert doc.data_info["numPages"] == 2 and doc.pages[0].shape == page_rgb.shape
    with pytest.raises(InvalidInputError, match="page 2 of the image: a TIFF image that is corrupt or trunc"):
        doc.pages[1]


def test_a_damaged_single_frame_tiff_is_refused_at_once(page_rgb: np.ndarray) -> None:
    data = encode_image(page_rgb, "TIFF")
    with pytest.raises(InvalidInputError, match="a TIFF image that is corrupt or truncated"):
        decode_document(data[: len(data) // 2], 1, SETTINGS)


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
    assert page.shape == (40, 20, 3) and doc.data_info == {"width": 20, "height": 40, "type": "image"}


def test_a_single_frame_tiff_is_reported_as_an_image(page_rgb: np.ndarray) -> None:
    """PaddleX splits only TIFFs of several frames; one frame is `{type: image, width, height}`."""
    doc = decode_document(encode_image(page_rgb, "TIFF"), None, SETTINGS)
    height, width = page_rgb.shape[:2]
    assert doc.data_info == {"width": width, "height": height, "type": "image"}
    assert np.array_equal(doc.pages[0], page_rgb)


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


