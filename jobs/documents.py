"""A job's file: how many pages it has (checked when it is submitted) and each page as a file of its own.

A job is parsed page by page through the same Triton model as `/layout-parsing`, so each page travels as a
small one-page document: a PDF page copied into a new PDF (its fonts and images come along), a TIFF frame as
a PNG (its orientation applied), an image as it is. What can be found wrong without rendering (not a PDF or
image, encrypted, no pages, too many) is refused at submission.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageOps

from jobs.protocol import JobRequestError

PDF, IMAGE = 0, 1
_IMAGE_FORMATS = ["PNG", "JPEG", "BMP", "WEBP", "TIFF"]
_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")   # what a TIFF frame can be saved as PNG in
# PDFium must not be called from two threads at once; the gateway splits pages in worker threads.
_pdfium = threading.Lock()


@dataclass(frozen=True)
class DocumentInfo:
    kind: str          # "pdf", "image" or "tiff"
    pages: int


def _is_pdf(data: bytes) -> bool:
    return b"%PDF-" in data[:1024]   # PDF readers accept the header anywhere in the first kilobyte


def inspect(data: bytes, max_pages: int) -> DocumentInfo:
    """What the file is and how many pages it has; `JobRequestError` (400) for a file no page comes from."""
    if not data:
        raise JobRequestError("the file is empty")
    if _is_pdf(data):
        with _pdfium:
            doc = _open_pdf(data)
            count = len(doc)
            doc.close()
        kind = "pdf"
    else:
        try:
            with Image.open(io.BytesIO(data), formats=_IMAGE_FORMATS) as image:
                count = getattr(image, "n_frames", 1)
                kind = "tiff" if image.format == "TIFF" else "image"
        except Exception:
            raise JobRequestError(
                "the file is neither a PDF nor a PNG, JPEG, BMP, WebP or TIFF image") from None
    if count == 0:
        raise JobRequestError("the file has no pages")
    if count > max_pages:
        raise JobRequestError(f"the file has {count} pages, over the limit of {max_pages} pages")
    return DocumentInfo(kind, count)


def _open_pdf(data: bytes) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise JobRequestError("the PDF is encrypted with a password; send it unprotected") from None
        raise JobRequestError(f"the PDF is corrupt or truncated and cannot be opened ({exc})") from None


def page_file(data: bytes, kind: str, index: int) -> tuple[bytes, int]:
    """Page `index` (0-based) as a file of its own, and its `fileType` (0 PDF, 1 image)."""
    if kind == "pdf":
        with _pdfium:
            source = _open_pdf(data)
            page = pdfium.PdfDocument.new()
            try:
                page.import_pages(source, [index])
                out = io.BytesIO()
                page.save(out)
            finally:
                page.close()
                source.close()
        return out.getvalue(), PDF
    if kind == "tiff":
        with Image.open(io.BytesIO(data), formats=["TIFF"]) as image:
            image.seek(index)
            frame = ImageOps.exif_transpose(image)
            if frame.mode not in _PNG_MODES:
                frame = frame.convert("RGB")
            out = io.BytesIO()
            frame.save(out, format="PNG")
        return out.getvalue(), IMAGE
    return data, IMAGE
