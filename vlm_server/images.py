"""Request images: a base64 data URL -> an RGB array, or a `BadImage` that the API answers with 400."""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
from PIL import Image, UnidentifiedImageError


class BadImage(ValueError):
    """The image part cannot be used; the message is meant for the client."""


def decode_data_url(url: str, max_pixels: int) -> np.ndarray:
    """RGB uint8 (H, W, 3) from `data:image/<fmt>;base64,<payload>`; transparency is laid on white."""
    header, comma, payload = url.partition(",")
    if not url.startswith("data:") or not comma:
        raise BadImage("only base64 data URLs (data:image/...;base64,...) are supported as image_url")
    media_type, *params = header[len("data:") :].split(";")
    if "base64" not in params:
        raise BadImage("the image data URL must be base64-encoded (data:image/...;base64,...)")
    if media_type and not media_type.startswith("image/"):
        raise BadImage(f"the data URL holds {media_type!r}, not an image")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadImage(f"the image data URL is not valid base64: {exc}") from None
    if not data:
        raise BadImage("the image data URL is empty")
    return _decode(data, max_pixels)


def _decode(data: bytes, max_pixels: int) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height <= max_pixels:
            image.load()
    except UnidentifiedImageError:
        raise BadImage("the data URL does not hold a readable image (unknown format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadImage(f"the data URL does not hold a readable image: {exc}") from None
    if width * height > max_pixels:
        raise BadImage(f"the image has {width}x{height} pixels, more than the limit of {max_pixels}")
    if width == 0 or height == 0:
        raise BadImage("the image is empty")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, image.convert("RGBA")).convert("RGB"))
    return np.asarray(image.convert("RGB"))
