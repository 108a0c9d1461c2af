"""The images of a `layoutParsingResults[]` entry, as the wire carries them: Base64 JPEG in
`markdown.images` (by `imgs/...` path), `outputImages` (by name) and `inputImage`."""

from __future__ import annotations

import base64
import binascii


def decode_image(data: str) -> bytes:
    """The bytes of a Base64 image of an answer; ValueError when it is not Base64."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the engine answered an image that is not Base64") from None
