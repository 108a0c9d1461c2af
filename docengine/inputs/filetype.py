"""What a file is, from its leading bytes, the declared `fileType` and, failing both, a URL's extension.

An explicit `fileType` must agree with the file's leading bytes. Without one, the leading bytes decide when
they are recognisable (URLs often carry no or a wrong extension) and the extension is the fallback; PaddleX
refuses Base64 without `fileType`, this server infers it instead.
"""

from __future__ import annotations

import mimetypes
import re
from urllib.parse import urlsplit

from docengine.errors import InvalidInputError

PDF, IMAGE = 0, 1

_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),   # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)
FORMAT_NAMES = {"PDF": "a PDF", "PNG": "a PNG image", "JPEG": "a JPEG image", "BMP": "a BMP image",
                 "WEBP": "a WebP image", "TIFF": "a TIFF image"}
SUPPORTED = "PDF, PNG, JPEG, BMP, WebP or TIFF"
URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")   # Base64 never contains ':'


def sniff_file_type(data: bytes) -> int | None:
    """0 for a PDF, 1 for a supported image (PNG, JPEG, BMP, WebP, TIFF), None when the bytes are neither."""
    fmt = sniff_format(data)
    return None if fmt is None else PDF if fmt == "PDF" else IMAGE


def sniff_format(data: bytes) -> str | None:
    for magic, fmt in _IMAGE_MAGIC:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if b"%PDF-" in data[:1024]:   # PDF readers accept a header anywhere in the first kilobyte
        return "PDF"
    return None


def resolve_type(fmt: str | None, file_type: int | None, source_hint: str | None) -> int:
    detected = None if fmt is None else PDF if fmt == "PDF" else IMAGE
    if file_type is None:
        kind = detected if detected is not None else _type_from_name(source_hint)
        if kind is None:
            raise InvalidInputError(
                f"file type cannot be determined; send fileType (0 = PDF, 1 = image) or a {SUPPORTED} file")
        return kind
    if file_type not in (PDF, IMAGE):
        raise InvalidInputError(f"fileType must be 0 (PDF) or 1 (image), got {file_type}")
    if fmt is not None and detected != file_type:
        said = "0 (PDF)" if file_type == PDF else "1 (image)"
        raise InvalidInputError(f"fileType is {said}, but the file is {FORMAT_NAMES[fmt]}")
    return file_type


def _type_from_name(name: str | None) -> int | None:
    if not name:
        return None
    path = urlsplit(name).path if URL_SCHEME.match(name) else name
    mime = mimetypes.guess_type(path.rsplit("/", 1)[-1])[0] or ""
    return PDF if mime == "application/pdf" else IMAGE if mime.startswith("image/") else None
