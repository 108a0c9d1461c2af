"""Real crops of known text for the recogniser: pages made with pymupdf, cut where pymupdf put the text.

`block_crops` renders a page at the pipeline's scale (2.0) and cuts each text block, the ruled table and
the formula out of it as the layout stage would (a little padding around the text), JPEG-encoded the way
the pipeline sends crops. `typical_page` is a full A4 page of wrapped paragraphs, `devkit.documents`'
sample page is the mixed one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pymupdf
from PIL import Image

from devkit.documents import FORMULA

PARAGRAPHS = [
    "Document parsing turns scanned pages and born-digital files into structured text. A layout detector "
    "first finds the regions of each page, such as titles, paragraphs, tables, formulas and figures, and "
    "then puts them in the order in which a person would read them.",
    "Each region is cropped from the page image and sent to a recogniser, which returns its text. Tables "
    "come back as a grid of cells and formulas as LaTeX, so that the results can be assembled into "
    "Markdown and JSON that keep the structure of the original document.",
    "On a server with a graphics card, a small vision language model reads the regions of many pages in "
    "large batches. Without one, a compact text recognition model does the same work on the processor, "
    "more slowly, but offline and with no special hardware at all.",
    "The service accepts PDF files and images, renders every page at a fixed scale, and limits the number "
    "of pages and pixels in each request, so that a single large upload cannot starve the requests of "
    "other users while it is being processed.",
    "Requests are admitted only while there is room in the queue. When the queue is full, the service "
    "answers at once with a clear error and a hint to retry later, instead of letting every client wait "
    "until its connection times out.",
    "Every stage reports how long it took, and the logs of one request share a single identifier. This "
    "makes it possible to find out later why a particular document was slow, or why its tables came back "
    "with fewer columns than expected.",
    "Scanned pages are often slightly rotated and carry noise from the scanner, while digital files may "
    "embed fonts that are hard to read. Both cases are part of the test set that is run before each "
    "release of the service.",
]
TITLE = "Parsing Documents at Scale"


@dataclass
class Crop:
    kind: str  # "text", "table" or "formula"
    truth: str  # the block's text, lines joined by spaces (table: cells by spaces)
    image: np.ndarray  # RGB, as the server decodes it
    jpeg: bytes
    rows: list[list[str]] = field(default_factory=list)  # table: the texts of each row's filled cells


def typical_page() -> bytes:
    """A full A4 page: a title, then paragraphs of 11 pt Helvetica down to the bottom margin (~44 lines)."""
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_text((60, 70), TITLE, fontsize=18, fontname="hebo")
    y = 95.0
    for text in PARAGRAPHS * 2:
        rect = pymupdf.Rect(60, y, 535, min(y + 80, 780))
        unused = page.insert_textbox(rect, text, fontsize=11, fontname="helv", lineheight=1.3)
        if unused < 0:
            break
        y += 80 - unused + 12
    data = doc.tobytes()
    doc.close()
    return data


def _encode(rgb: np.ndarray) -> tuple[bytes, np.ndarray]:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG")  # PIL's default quality, like the pipeline
    data = buf.getvalue()
    return data, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _cut(img: np.ndarray, rect: pymupdf.Rect, scale: float, pad: float) -> np.ndarray:
    h, w = img.shape[:2]
    x0, y0 = max(0, int((rect.x0 - pad) * scale)), max(0, int((rect.y0 - pad) * scale))
    x1, y1 = min(w, int((rect.x1 + pad) * scale)), min(h, int((rect.y1 + pad) * scale))
    return np.ascontiguousarray(img[y0:y1, x0:x1])


def block_crops(pdf: bytes, index: int = 0, *, scale: float = 2.0, pad: float = 4.0) -> list[Crop]:
    """The page's text blocks, table and formula as the engine would crop them (pad in points)."""
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        page = doc[index]
        pix = page.get_pixmap(matrix=pymupdf.Matrix(scale, scale), alpha=False)
        img = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.width, 3)
        table = pymupdf.Rect()
        for drawing in page.get_drawings():
            table |= drawing["rect"]
        crops, cells = [], []
        for block in page.get_text("dict")["blocks"]:
            rect = pymupdf.Rect(block["bbox"])
            lines = ["".join(s["text"] for s in line["spans"]) for line in block["lines"]]
            if not table.is_empty and table.contains(rect):
                cells.append(lines)  # pymupdf gives a ruled table's row as one block, a cell per line
                continue
            text = " ".join(lines)
            jpeg, image = _encode(_cut(img, rect, scale, pad))
            crops.append(Crop("formula" if text == FORMULA else "text", text, image, jpeg))
        if not table.is_empty:
            jpeg, image = _encode(_cut(img, table, scale, pad))
            crops.append(Crop("table", " ".join(sum(cells, [])), image, jpeg, cells))
    return crops
