"""A PDF page's text layer: each character with its box in page pixels, and what says whether to believe it.

One reader for everything that uses the layer: recovering text the layout model missed (`recovery`) and
taking the text of text blocks from the PDF itself (`layertext`). It reads through PDFium (pypdfium2), on the
PDF's own thread and under `pdfium_lock`, like rendering. Boxes are PDFium's loose character boxes (the
font's ascent to descent, the glyph's advance), mapped onto the rendered page image, rotation and crop box
included, so that they line up with the layout boxes.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
from dataclasses import dataclass, field

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from docengine.inputs.pdf import PdfPages
from docengine.types import DecodedDocument

INVISIBLE_MODES = frozenset({pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE, pdfium_c.FPDF_TEXTRENDERMODE_CLIP})
UPRIGHT_TOLERANCE = math.radians(2)


@dataclass(frozen=True, slots=True)
class Char:
    """One character of the layer. `space_before`: the layer puts a space (its own or PDFium's) before it."""

    text: str
    box: tuple[float, float, float, float]
    invisible: bool = False     # drawn in render mode 3 or 7: an OCR layer over a scan, of unknown quality
    unmapped: bool = False      # no Unicode for the glyph: a private-use, replacement or missing code
    upright: bool = True        # its baseline runs left to right on the rendered page
    space_before: bool = False

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


@dataclass
class TextLayer:
    """The non-space characters of a page in the layer's own order."""

    chars: list[Char] = field(default_factory=list)


def is_unmapped(code: int) -> bool:
    """Codes that carry no character: none, controls, private use, replacement, non-characters."""
    return (code < 0x20 or 0xE000 <= code <= 0xF8FF or code >= 0xF0000 or code in (0xFFFD, 0xFFFE, 0xFFFF))


async def read_layer(doc: DecodedDocument, index: int) -> TextLayer | None:
    """Page `index`'s text layer; None when the document is not a PDF. A page without text has no chars."""
    pages = doc.pages
    if not isinstance(pages, PdfPages):
        return None
    loop = asyncio.get_running_loop()
    async with pages.turn:
        return await loop.run_in_executor(pages.executor, pages.with_page, index, _read)


def _read(page: pdfium.PdfPage, scale: float) -> TextLayer:
    """The caller holds the PDFium lock."""
    to_pixels = _page_to_pixels(page, scale)
    rotation = math.radians(page.get_rotation())
    textpage = page.get_textpage()
    try:
        raw = textpage.raw
        chars: list[Char] = []
        space = False
        rect = pdfium_c.FS_RECTF()
        count = pdfium_c.FPDFText_CountChars(raw)
        for i in range(count):
            code = pdfium_c.FPDFText_GetUnicode(raw, i)
            if 0xDC00 <= code <= 0xDFFF:
                continue     # the second half of a surrogate pair, joined to the first below
            if 0xD800 <= code <= 0xDBFF:
                low = pdfium_c.FPDFText_GetUnicode(raw, i + 1) if i + 1 < count else 0
                paired = 0xDC00 <= low <= 0xDFFF
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00) if paired else 0xFFFD
            if code == 0x02 or pdfium_c.FPDFText_IsHyphen(raw, i):
                code = ord("-")      # PDFium's mark for a hyphen at a line end
            text = chr(code) if code < 0x110000 else "\ufffd"
            if text.isspace() or pdfium_c.FPDFText_IsGenerated(raw, i):
                space = space or text.isspace()
                continue
            if not pdfium_c.FPDFText_GetLooseCharBox(raw, i, ctypes.byref(rect)):
                continue
            x1, y1 = to_pixels(rect.left, rect.top)
            x2, y2 = to_pixels(rect.right, rect.bottom)
            obj = pdfium_c.FPDFText_GetTextObject(raw, i)
            mode = pdfium_c.FPDFTextObj_GetTextRenderMode(obj) if obj else pdfium_c.FPDF_TEXTRENDERMODE_FILL
            angle = pdfium_c.FPDFText_GetCharAngle(raw, i)
            turn = abs((angle - rotation + math.pi) % (2 * math.pi) - math.pi) if angle >= 0 else 0.0
            chars.append(Char(
                text=text,
                box=(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)),
                invisible=mode in INVISIBLE_MODES,
                unmapped=is_unmapped(code) or bool(pdfium_c.FPDFText_HasUnicodeMapError(raw, i) == 1),
                upright=turn <= UPRIGHT_TOLERANCE,
                space_before=space,
            ))
            space = False
        return TextLayer(chars)
    finally:
        textpage.close()


def _page_to_pixels(page: pdfium.PdfPage, scale: float):  # type: ignore[no-untyped-def]
    """PDF user space -> pixels of the page rendered at `scale`: the affine map PDFium itself renders with,
    found from three points (on a device 64 times larger, since PDFium rounds device points to integers)."""
    width, height = page.get_size()
    fine = 64
    size_x, size_y = round(width * scale * fine), round(height * scale * fine)
    dx, dy = ctypes.c_int(), ctypes.c_int()

    def device(x: float, y: float) -> tuple[float, float]:
        pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, size_x, size_y, 0, x, y,
                                   ctypes.byref(dx), ctypes.byref(dy))
        return dx.value / fine, dy.value / fine

    ox, oy = device(0, 0)
    ax, ay = device(1000, 0)
    bx, by = device(0, 1000)
    ux, uy, vx, vy = (ax - ox) / 1000, (ay - oy) / 1000, (bx - ox) / 1000, (by - oy) / 1000
    return lambda x, y: (ox + ux * x + vx * y, oy + uy * x + vy * y)
