"""`outputFormats: ["docx"]`: recognised blocks as a Word document (python-docx), for `exports.docx`.

The document follows the blocks in reading order, as the Markdown does and with the same labels left out
(`markdown_ignore_labels`): the document title as Word's Title, paragraph titles as Heading 1, 2, ... by
their level, text as paragraphs, captions centred, tables (HTML, spans included) as Word tables, pictures
from the page's crops at their width on the page, charts read by the VLM as tables, and formulas as their
LaTeX text, centred. `exports` is `{docx: {content: Base64 of the file, fileName}}`, as PaddleX serves it.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import docx
from docx.document import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.exceptions import InvalidSpanError
from docx.image.exceptions import UnrecognizedImageError
from docx.shared import Emu, Pt

from docengine.markdown import IMAGE_LABELS, title_level
from docengine.types import Block

TITLE_LABELS = ("paragraph_title", "abstract_title", "reference_title", "content_title")
CAPTION_LABELS = ("figure_title", "table_title", "chart_title")
FORMULA_LABELS = ("display_formula", "formula", "inline_formula")
SKIPPED_LABELS = ("formula_number",)   # as in the Markdown: only ever shown beside its formula
_BOX = re.compile(r"_box_(-?\d+)_(-?\d+)_(-?\d+)_(-?\d+)\.\w+$")


@dataclass
class DocxPage:
    """One page's part of the document: its blocks (final content), width, crops and switches."""

    blocks: list[Block]
    page_width: int
    images: Mapping[str, bytes] = field(default_factory=dict)   # `imgs/...` path -> JPEG (or PNG) bytes
    ignore_labels: Collection[str] = ()
    use_chart_recognition: bool = False
    use_seal_recognition: bool = False
    use_ocr_for_image_block: bool = False


def docx_exports(pages: Sequence[DocxPage], file_name: str) -> dict[str, Any]:
    """`exports` of a `layoutParsingResults[]` entry."""
    content = base64.b64encode(build_docx(pages)).decode("ascii")
    return {"docx": {"content": content, "fileName": file_name}}


def decode_images(images: Mapping[str, str] | None) -> dict[str, bytes]:
    """Markdown images (Base64) as bytes; what is not Base64 (a URL, say) is left out, never fetched."""
    out = {}
    for path, value in (images or {}).items():
        try:
            out[path] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError, TypeError):
            continue
    return out


def build_docx(pages: Sequence[DocxPage]) -> bytes:
    document = docx.Document()
    for page in pages:
        writer = _Writer(document, page)
        for block in page.blocks:
            if block.label not in page.ignore_labels and block.label not in SKIPPED_LABELS:
                writer.write(block)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


class _Writer:
    def __init__(self, document: Document, page: DocxPage) -> None:
        self.document = document
        self.page = page
        section = document.sections[0]
        margins = int(section.left_margin or 0) + int(section.right_margin or 0)
        self.usable_width = int(section.page_width or Emu(7772400)) - margins   # Letter: 8.5 in

    def write(self, block: Block) -> None:
        label, page = block.label, self.page
        pictures = IMAGE_LABELS if page.use_chart_recognition else (*IMAGE_LABELS, "chart")
        if label == "doc_title":
            self.document.add_heading(_one_line(block.content), level=0)
        elif label in TITLE_LABELS:
            level, text = title_level(block)
            self.document.add_heading(_one_line(text), level=max(1, min(level, 9)))
        elif label in pictures:
            self.picture(block)
            shows_text = page.use_seal_recognition if label == "seal" else page.use_ocr_for_image_block
            if shows_text and block.content.strip():
                self.paragraphs(block.content)
        elif label == "chart":
            self.chart(block.content)
        elif label == "table":
            self.table(block.content)
        elif label in FORMULA_LABELS:
            self.formula(block.content)
        elif label in CAPTION_LABELS:
            paragraph = self.document.add_paragraph()
            paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
            run = paragraph.add_run(_one_line(block.content))
            run.italic = True
            run.font.size = Pt(10)
        else:
            self.paragraphs(block.content)

    def paragraphs(self, text: str) -> None:
        for line in text.split("\n"):
            if line.strip():
                self.document.add_paragraph(line.strip())

    def formula(self, content: str) -> None:
        latex = content.strip().strip("$").strip()
        if not latex:
            return
        paragraph = self.document.add_paragraph()
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
        run = paragraph.add_run(latex)
        run.font.name = "Cambria Math"

    def picture(self, block: Block) -> None:
        data = self.page.images.get(block.image_path or "")
        if data is None:
            return
        try:
            self.document.add_picture(io.BytesIO(data), width=Emu(self.width_on_page(block.bbox)))
        except UnrecognizedImageError:
            return   # a client's markdownImages entry that is not a picture
        self.document.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER

    def width_on_page(self, bbox: Sequence[int] | None) -> int:
        """A picture's width in the document: its share of the page's width (the whole line without one)."""
        if bbox is None:
            return self.usable_width
        fraction = min(1.0, max(0.05, (bbox[2] - bbox[0]) / max(self.page.page_width, 1)))
        return int(self.usable_width * fraction)

    def chart(self, content: str) -> None:
        """A chart read by the VLM: pipe-separated rows, the first one the header."""
        rows = [[c.strip() for c in line.strip().strip("|").split("|")]
                for line in content.strip().split("\n") if line.strip()]
        self.grid([[_Cell(text) for text in row] for row in rows], header=True)

    def table(self, html: str) -> None:
        parser = _TableParser()
        parser.feed(html)
        parser.close()
        if parser.rows:
            self.grid(parser.rows, header=False)
        elif html.strip():
            self.paragraphs(re.sub(r"<[^>]+>", " ", html))

    def grid(self, rows: list[list[_Cell]], *, header: bool) -> None:
        """A Word table from rows of cells, row and column spans placed on the grid they cover."""
        placed: list[tuple[int, int, _Cell]] = []
        taken: set[tuple[int, int]] = set()
        for r, row in enumerate(rows):
            c = 0
            for cell in row:
                while (r, c) in taken:
                    c += 1
                cell.rowspan = min(cell.rowspan, len(rows) - r)   # a span past the last row ends there
                placed.append((r, c, cell))
                taken.update((r + dr, c + dc) for dr in range(cell.rowspan) for dc in range(cell.colspan))
                c += cell.colspan
        if not placed:
            return
        height = max(r for r, _ in taken) + 1
        width = max(c for _, c in taken) + 1
        table = self.document.add_table(rows=height, cols=width)
        table.style = "Table Grid"
        for r, c, cell in placed:
            target = table.cell(r, c)
            if cell.rowspan > 1 or cell.colspan > 1:
                try:
                    target = target.merge(table.cell(r + cell.rowspan - 1, c + cell.colspan - 1))
                except InvalidSpanError:
                    pass   # spans that cross each other (a malformed table): the cell stays unmerged
            paragraph = target.paragraphs[0]
            run = paragraph.add_run(cell.text)
            run.bold = header and r == 0
            for path in cell.images:
                data = self.page.images.get(path)
                if data is not None:
                    size = min(self.usable_width // width, self.width_on_page(_box_of(path)))
                    try:
                        paragraph.add_run().add_picture(io.BytesIO(data), width=Emu(size))
                    except UnrecognizedImageError:
                        continue


@dataclass
class _Cell:
    text: str = ""
    colspan: int = 1
    rowspan: int = 1
    images: list[str] = field(default_factory=list)


class _TableParser(HTMLParser):
    """Rows of cells (text, spans, pictures) from the first level of an HTML table."""

    MAX_SPAN = 100   # bounds the grid a hostile colspan could ask for (a rowspan ends at the last row)

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[_Cell]] = []
        self._cell: _Cell | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            if not self.rows:
                self.rows.append([])
            self._cell = _Cell(colspan=_span(values.get("colspan")), rowspan=_span(values.get("rowspan")))
            self._text = []
            self.rows[-1].append(self._cell)
        elif tag == "img" and self._cell is not None and values.get("src"):
            self._cell.images.append(str(values["src"]))
        elif tag == "br":
            self._text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self._cell.text = " ".join("".join(self._text).split(" ")).strip()
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._text.append(data)


def _span(value: str | None) -> int:
    try:
        return min(max(1, int(value or 1)), _TableParser.MAX_SPAN)
    except ValueError:
        return 1


def _box_of(path: str) -> list[int] | None:
    """The page box an `imgs/img_in_<label>_box_x1_y1_x2_y2.jpg` path names."""
    match = _BOX.search(path)
    return [int(v) for v in match.groups()] if match else None


def _one_line(text: str) -> str:
    return text.replace("-\n", "").replace("\n", " ").strip()
