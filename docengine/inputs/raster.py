"""Images (PNG, JPEG, BMP, WebP, TIFF) decoded with Pillow, sizes checked from the header before any pixel."""

from __future__ import annotations

import contextlib
import io
import threading
import weakref
from collections.abc import Iterator

import numpy as np
from PIL import ExifTags, Image, ImageOps

from docengine.errors import InvalidInputError
from docengine.inputs.filetype import FORMAT_NAMES
from docengine.inputs.lazy import LazyPages
from docengine.settings import EngineSettings
from docengine.types import DecodedDocument

_HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def decode_image(data: bytes, fmt: str, settings: EngineSettings) -> DecodedDocument:
    """Decode with Pillow. Sizes are checked from the header before any pixel is decoded, including Pillow's
    decompression-bomb threshold (`Image.MAX_IMAGE_PIXELS`). A TIFF of several frames is a document whose
    frames are decoded when read; a single-frame TIFF is an image like any other (as PaddleX reports it)."""
    if fmt == "TIFF" and _frame_count(data) > 1:
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


def _frame_count(data: bytes) -> int:
    with _decoding("TIFF"), Image.open(io.BytesIO(data), formats=["TIFF"]) as image:
        return int(getattr(image, "n_frames", 1))


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
        raise InvalidInputError(f"the file starts like {FORMAT_NAMES[fmt]} but its header cannot be read "
                                "(corrupt, or zero width or height)") from None
    except MemoryError:
        raise
    except Exception as exc:
        raise InvalidInputError(f"{where}{FORMAT_NAMES[fmt]} that is corrupt or truncated ({exc})") from None


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
