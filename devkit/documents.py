"""Real test documents made on the fly with pymupdf (AGPL: tests only), with their ground truth.

`sample_pdf()` writes A4 pages with a title, headings, English and Chinese paragraphs, a ruled table, a
formula line, a header and a footer. Texts are known, so tests can measure character accuracy.

The Chinese text uses an embedded CJK font: pymupdf's built-in `china-s` is a font reference without font
data, which PDFium (our renderer, as PaddleX's) draws as nothing on a host without a CJK font.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass, field

import numpy as np
import pymupdf
from PIL import Image

TITLE = "Annual Report on Document Parsing"
HEADING = "1 Introduction"
PARAGRAPHS = [
    "The layout detector first locates regions on the page and orders them for reading.",
    "Each region is then cropped and recognised by the vision language model in parallel.",
]
CHINESE = "文档解析服务将页面转换为结构化的文本和表格。"
TABLE = [["Model", "Pages", "Score"], ["Layout", "12", "0.91"], ["Recogniser", "34", "0.87"]]
FORMULA = "E = m c^2"
HEADER = "Internal draft"
FOOTER = "Page footer text"


@dataclass
class PageTruth:
    texts: list[str] = field(default_factory=list)
    table: list[list[str]] = field(default_factory=list)


def _page(doc: pymupdf.Document, index: int, *, with_table: bool = True) -> PageTruth:
    page = doc.new_page(width=595, height=842)
    truth = PageTruth()
    page.insert_text((60, 40), HEADER, fontsize=9, fontname="helv")
    y = 90.0
    if index == 0:
        page.insert_text((60, y), TITLE, fontsize=20, fontname="hebo")
        truth.texts.append(TITLE)
        y += 40
    page.insert_text((60, y), HEADING, fontsize=14, fontname="hebo")
    truth.texts.append(HEADING)
    y += 30
    for text in PARAGRAPHS:
        page.insert_text((60, y), text, fontsize=11, fontname="helv")
        truth.texts.append(text)
        y += 28
    page.insert_text((60, y), CHINESE, fontsize=11, fontname=cjk_font(page))
    truth.texts.append(CHINESE)
    y += 40
    page.insert_text((200, y), FORMULA, fontsize=14, fontname="tiro")
    y += 40
    if with_table:
        draw_table(page, y, TABLE)
        truth.table = [list(row) for row in TABLE]
    page.insert_text((60, 810), f"{FOOTER} {index + 1}", fontsize=9, fontname="helv")
    return truth


def draw_table(page: pymupdf.Page, top: float, rows: list[list[str]]) -> float:
    """A ruled table of 150 x 26 pt cells from (60, top); returns the y below it."""
    col_w, row_h = 150.0, 26.0
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            rect = pymupdf.Rect(60 + c * col_w, top + r * row_h, 60 + (c + 1) * col_w, top + (r + 1) * row_h)
            page.draw_rect(rect, color=(0, 0, 0), width=1)
            page.insert_text((rect.x0 + 8, rect.y1 - 8), cell, fontsize=11, fontname="helv")
    return top + len(rows) * row_h


def cjk_font(page: pymupdf.Page) -> str:
    """Embed pymupdf's CJK font in `page` and return the name to write with."""
    page.insert_font(fontname="cjk", fontbuffer=pymupdf.Font("cjk").buffer)
    return "cjk"


def save_pdf(doc: pymupdf.Document) -> bytes:
    doc.subset_fonts()  # the embedded CJK font shrinks from megabytes to the glyphs used
    data = doc.tobytes(garbage=3, deflate=True)
    doc.close()
    return data


def sample_pdf(pages: int = 2, *, with_table: bool = True) -> tuple[bytes, list[PageTruth]]:
    """A PDF of `pages` A4 pages and the ground truth of each page."""
    doc = pymupdf.open()
    truths = [_page(doc, i, with_table=with_table) for i in range(pages)]
    return save_pdf(doc), truths


REPORT_TITLE = "Port Authority Annual Review"
REPORT_ENGLISH = ("Cargo volumes through the harbour rose by eleven percent over the year, while the new "
                  "container terminal opened on schedule and under budget in the spring.")
REPORT_CHINESE = "港务局年度报告显示，全年货物吞吐量增长百分之十一，新集装箱码头按期投入使用。"
REPORT_TABLE = [["Terminal", "Ships", "Tonnes"], ["North", "412", "9300"], ["South", "377", "8150"]]
REPORT_FOOTER = "Port Authority Annual Review - page 1"


@dataclass
class ReportPage:
    """The report page and where each of its parts lies, in pt (x0, y0, x1, y1)."""

    pdf: bytes
    parts: dict[str, tuple[float, float, float, float]]

    def words(self) -> list[str]:
        """Every word of the page: English words, the Chinese paragraph's characters, the table's cells."""
        text = " ".join([REPORT_TITLE, REPORT_ENGLISH, REPORT_FOOTER, *sum(REPORT_TABLE, [])])
        return words_of(text) + [c for c in REPORT_CHINESE if c.isalnum()]


def words_of(text: str) -> list[str]:
    """Latin words (edge punctuation stripped) and CJK characters, each once per occurrence."""
    out: list[str] = []
    for token in text.split():
        latin = "".join(" " if "\u2e80" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef" else c for c in token)
        out += [w.strip(".,;:") for w in latin.split() if w.strip(".,;:-")]
        out += [c for c in token if "\u4e00" <= c <= "\u9fff"]
    return out


def report_page(*, english_font: str = "helv", strip_cjk_unicode: bool = False) -> ReportPage:
    """One A4 page: a title, an English and a Chinese paragraph (`insert_textbox`), a ruled table, a footer.

    `english_font="cjk"` writes the English paragraph in the embedded CJK font too, and
    `strip_cjk_unicode` removes that font's ToUnicode map: its glyphs then have no Unicode in the layer."""
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    cjk = cjk_font(page)
    parts = {"title": (60.0, 70.0, 420.0, 96.0), "english": (60.0, 120.0, 535.0, 170.0),
             "chinese": (60.0, 190.0, 535.0, 230.0), "footer": (60.0, 800.0, 320.0, 815.0)}
    page.insert_text((60, 90), REPORT_TITLE, fontsize=20, fontname="hebo")
    page.insert_textbox(pymupdf.Rect(parts["english"]), REPORT_ENGLISH, fontsize=11,
                        fontname=cjk if english_font == "cjk" else english_font)
    page.insert_textbox(pymupdf.Rect(parts["chinese"]), REPORT_CHINESE, fontsize=11, fontname=cjk)
    bottom = draw_table(page, 260, REPORT_TABLE)
    parts["table"] = (60.0, 260.0, 510.0, bottom)
    page.insert_text((60, 812), REPORT_FOOTER, fontsize=9, fontname="helv")
    if not strip_cjk_unicode:
        return ReportPage(save_pdf(doc), parts)
    doc.subset_fonts()
    data = re.sub(rb"/ToUnicode \d+ 0 R", b"", doc.tobytes(garbage=3))
    doc.close()
    return ReportPage(data, parts)


def picture_pdf(pages: int = 1) -> bytes:
    """Pages with a title, a picture (a gradient with a red square) and its caption: the layout model finds an
    `image` block, so the answer's Markdown has an image."""
    y, x = np.mgrid[0:300, 0:400]
    picture = np.stack([x * 255 // 400, y * 255 // 300, (x + y) * 255 // 700], -1).astype(np.uint8)
    picture[100:200, 150:250] = [200, 30, 30]
    doc = pymupdf.open()
    for number in range(1, pages + 1):
        page = doc.new_page(width=595, height=842)
        page.insert_text((60, 80), f"A page with a picture ({number})", fontsize=18, fontname="hebo")
        top = 130 + 20 * number   # each page's picture elsewhere: its image has a name of its own
        page.insert_image(pymupdf.Rect(100, top, 500, top + 300), stream=encode_image(picture, "PNG"))
        page.insert_text((60, 500), "Figure 1: a gradient with a red square.", fontsize=11, fontname="helv")
    return save_pdf(doc)


def render_page(pdf: bytes, index: int = 0, dpi: int = 144) -> np.ndarray:
    """One page of a PDF as an RGB array (pymupdf, for making image inputs)."""
    with pymupdf.open(stream=pdf, filetype="pdf") as doc:
        pix = doc[index].get_pixmap(dpi=dpi, alpha=False)
        return np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.width, 3).copy()


def eager_page_sizes(pdf: bytes, scale: float, max_pixels: int) -> list[dict[str, int]]:
    """`dataInfo.pages` as the engine reported it when it rendered every page up front: each page loaded,
    its scale fitted to the pixel limit from its loaded size, rendered by pypdfium2, its image measured."""
    import pypdfium2 as pdfium

    from docengine.inputs import fit_render_scale, pdfium_lock

    sizes = []
    with pdfium_lock:
        doc = pdfium.PdfDocument(pdf)
        try:
            for index in range(len(doc)):
                page = doc[index]
                width_pt, height_pt = page.get_size()
                bitmap = page.render(scale=fit_render_scale(width_pt, height_pt, scale, max_pixels),
                                     rev_byteorder=True)
                height, width = bitmap.to_numpy().shape[:2]
                sizes.append({"width": width, "height": height})
                bitmap.close()
                page.close()
        finally:
            doc.close()
    return sizes


def encode_image(rgb: np.ndarray, fmt: str = "PNG", **save_kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **save_kwargs)
    return buf.getvalue()


def multipage_tiff(images: list[np.ndarray]) -> bytes:
    buf = io.BytesIO()
    frames = [Image.fromarray(img) for img in images]
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions of one character each."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def char_accuracy(truth: str, got: str) -> float:
    """1 - Levenshtein / len(truth), ignoring whitespace."""
    a = "".join(truth.split())
    return 1.0 - edit_distance(a, "".join(got.split())) / max(len(a), 1)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
