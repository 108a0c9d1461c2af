"""Documents the end-to-end tests need beyond `devkit.documents`: a page with a picture, a table split over
two pages, and hand-made broken files. Made with pymupdf (tests only), texts known.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pymupdf
from PIL import Image, ImageDraw

from devkit.documents import CHINESE, HEADER, HEADING, PARAGRAPHS, TITLE, cjk_font, draw_table, save_pdf

CAPTION = "Figure 1: Regions found on a page"
SPLIT_COLUMNS = ["Region", "Count", "Share"]
SPLIT_ROWS = [[f"Item {chr(65 + i)}", str(10 + 3 * i), f"0.{11 + 4 * i}"] for i in range(12)]
SPLIT_AT = 7  # rows (after the header row) on the first page; the rest continue on the second


def picture(width: int = 480, height: int = 300) -> bytes:
    """A colourful PNG with shapes: what the layout model calls an image."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 160)], axis=2).astype(np.uint8)
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    draw.ellipse((60, 40, 220, 200), fill=(250, 200, 30))
    draw.rectangle((260, 120, 430, 260), fill=(30, 60, 200))
    draw.polygon([(100, 280), (200, 150), (300, 280)], fill=(20, 150, 60))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def figure_pdf() -> bytes:
    """One page: title, two paragraphs, a picture with its caption, a paragraph, Chinese text."""
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_text((60, 90), TITLE, fontsize=20, fontname="hebo")
    y = 130.0
    for text in PARAGRAPHS:
        page.insert_text((60, y), text, fontsize=11, fontname="helv")
        y += 28
    page.insert_image(pymupdf.Rect(100, 220, 460, 445), stream=picture())
    page.insert_text((200, 470), CAPTION, fontsize=10, fontname="helv")
    page.insert_text((60, 520), PARAGRAPHS[0], fontsize=11, fontname="helv")
    page.insert_text((60, 560), CHINESE, fontsize=11, fontname=cjk_font(page))
    return save_pdf(doc)


def split_table_pdf() -> bytes:
    """Two pages: text (English and Chinese) then a ruled table that runs off the end of page 1 and continues
    on page 2 with the same columns and no header row, as a long table does."""
    doc = pymupdf.open()
    first = doc.new_page(width=595, height=842)
    first.insert_text((60, 40), HEADER, fontsize=9, fontname="helv")
    first.insert_text((60, 90), TITLE, fontsize=20, fontname="hebo")
    first.insert_text((60, 130), HEADING, fontsize=14, fontname="hebo")
    y = 160.0
    for text in PARAGRAPHS:
        first.insert_text((60, y), text, fontsize=11, fontname="helv")
        y += 28
    first.insert_text((60, y), CHINESE, fontsize=11, fontname=cjk_font(first))
    draw_table(first, 560, [SPLIT_COLUMNS, *SPLIT_ROWS[:SPLIT_AT]])
    first.insert_text((60, 810), "Page footer text 1", fontsize=9, fontname="helv")
    second = doc.new_page(width=595, height=842)
    second.insert_text((60, 40), HEADER, fontsize=9, fontname="helv")
    draw_table(second, 70, SPLIT_ROWS[SPLIT_AT:])
    second.insert_text((60, 810), "Page footer text 2", fontsize=9, fontname="helv")
    return save_pdf(doc)


# --- broken and hostile files -------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` RGB pixels but carries one tiny compressed row: a few hundred
    bytes that would need width * height * 3 bytes of memory if anyone decoded them."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\xff" * 3 * min(width, 16))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def encrypted_pdf(pdf: bytes) -> bytes:
    """`pdf` protected with a user password (AES-256)."""
    doc = pymupdf.open(stream=pdf, filetype="pdf")
    data = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")
    doc.close()
    return data
