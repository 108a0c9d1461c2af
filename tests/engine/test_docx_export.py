"""`outputFormats: ["docx"]`: the Word document opened again with python-docx, from blocks, from a page's
answer, and from `/restructure-pages` (per page and concatenated)."""

from __future__ import annotations

import base64
import io
from typing import Any

import docx
import numpy as np
from docx.document import Document

from devkit.documents import encode_image
from docengine.assemble import assemble_page
from docengine.docx_export import DocxPage, build_docx, decode_images
from docengine.options import AssembleOptions
from docengine.restructure import restructure_pages
from docengine.types import Block

W = 1000
PICTURE = "imgs/img_in_image_box_100_300_600_600.jpg"
FIGURE = "imgs/img_in_image_box_700_700_760_740.jpg"
TABLE = ('<table><tr><td colspan="2">Scores</td><td rowspan="2">Note</td></tr>'
         f'<tr><td>Model</td><td>0.91 <img src="{FIGURE}" alt="Image" /></td></tr>'
         "<tr><td>Layout</td><td>12</td><td>ok</td></tr></table>")


def jpeg(width: int, height: int) -> bytes:
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = 200
    return encode_image(rgb, "JPEG")


def blocks() -> list[Block]:
    return [
        Block("header", [0, 0, 300, 30], "Internal draft"),
        Block("doc_title", [100, 40, 900, 90], "Annual\nReport"),
        Block("paragraph_title", [100, 100, 900, 130], "1 Introduction"),
        Block("text", [100, 140, 900, 200], "First line.\nSecond line."),
        Block("paragraph_title", [100, 210, 900, 240], "1.1 Scope"),
        Block("image", [100, 300, 600, 600], "", image_path=PICTURE),
        Block("figure_title", [100, 610, 600, 640], "Figure 1: A picture"),
        Block("table", [100, 650, 900, 800], TABLE),
        Block("display_formula", [300, 820, 700, 860], "$$E = mc^2$$"),
        Block("formula_number", [800, 820, 850, 860], "(1)"),
        Block("chart", [100, 900, 600, 1100], "Year | Value\n2024 | 1\n2025 | 2"),
    ]


def opened(data: bytes) -> Document:
    return docx.Document(io.BytesIO(data))


def styled(document: Document) -> list[tuple[str, str]]:
    return [(p.style.name, p.text) for p in document.paragraphs if p.text]


def test_blocks_become_headings_paragraphs_tables_pictures_and_formulas():
    page = DocxPage(blocks(), W, {PICTURE: jpeg(50, 30), FIGURE: jpeg(6, 4)}, ignore_labels=["header"],
                    use_chart_recognition=True)
    document = opened(build_docx([page]))
    assert styled(document) == [
        ("Title", "Annual Report"), ("Heading 1", "1 Introduction"),
        ("Normal", "First line."), ("Normal", "Second line."), ("Heading 2", "1.1 Scope"),
        ("Normal", "Figure 1: A picture"), ("Normal", "E = mc^2")]   # header ignored, number skipped
    assert len(document.inline_shapes) == 2                          # the picture, and the one in the table
    picture = document.inline_shapes[0]
    usable = document.sections[0].page_width - document.sections[0].left_margin \
        - document.sections[0].right_margin
    assert abs(picture.width - usable * 0.5) < usable * 0.01          # half the page wide, as on the page
    assert abs(document.inline_shapes[1].width - usable * 0.06) < usable * 0.01   # its box, in its cell
    table, chart = document.tables
    assert [[c.text for c in row.cells] for row in table.rows] == [
        ["Scores", "Scores", "Note"], ["Model", "0.91", "Note"], ["Layout", "12", "ok"]]
    assert table.cell(0, 0)._tc is table.cell(0, 1)._tc               # colspan merged
    assert table.cell(0, 2)._tc is table.cell(1, 2)._tc               # rowspan merged
    assert [[c.text for c in row.cells] for row in chart.rows] == [["Year", "Value"], ["2024", "1"],
                                                                  ["2025", "2"]]
    assert chart.cell(0, 0).paragraphs[0].runs[0].bold


def test_what_cannot_be_drawn_is_left_out_rather_than_failing():
    broken = [Block("image", [0, 0, 10, 10], "", image_path="imgs/x.jpg"),
              Block("table", [0, 0, 10, 10], '<table><tr><td colspan="9999">a</td></tr>'
                                              '<tr><td rowspan="50">b</td><td>c</td></tr></table>')]
    document = opened(build_docx([DocxPage(broken, W, {"imgs/x.jpg": b"not a picture"})]))
    assert len(document.inline_shapes) == 0
    [table] = document.tables
    assert len(table.rows) == 2 and len(table.columns) == 100        # spans bounded
    assert decode_images({"a": base64.b64encode(b"x").decode(), "b": "https://example.com/i.jpg"}) == {
        "a": b"x"}


def exported(entry: dict[str, Any]) -> Document:
    assert set(entry["exports"]) == {"docx"} and set(entry["exports"]["docx"]) == {"content", "fileName"}
    return opened(base64.b64decode(entry["exports"]["docx"]["content"], validate=True))


def test_a_page_answer_carries_its_docx_with_its_pictures_even_without_markdown_images():
    page = np.full((1200, W, 3), 255, np.uint8)
    options = AssembleOptions(visualize=False, return_markdown_images=False, output_formats=("docx",))
    entry = assemble_page(page, [], blocks(), options)
    assert "images" not in entry["markdown"]
    assert entry["exports"]["docx"]["fileName"] == "page_0.docx"
    document = exported(entry)
    assert ("Heading 2", "1.1 Scope") in styled(document)
    assert "exports" not in assemble_page(page, [], blocks(), AssembleOptions(visualize=False))


def test_restructured_pages_export_one_docx_each_or_one_for_the_document():
    page = np.full((1200, W, 3), 255, np.uint8)
    options = AssembleOptions(visualize=False)
    entries = [assemble_page(page, [], blocks()[:5], options),
               assemble_page(page, [], [Block("text", [100, 100, 900, 140], "Page two.")], options)]
    pages = [(e["prunedResult"], e["markdown"].get("images")) for e in entries]
    apart = restructure_pages(pages, output_formats=("docx",))
    assert [r["exports"]["docx"]["fileName"] for r in apart] == ["page_0.docx", "page_1.docx"]
    assert [p.text for p in exported(apart[1]).paragraphs] == ["Page two."]
    [whole] = restructure_pages(pages, concatenate_pages=True, output_formats=("docx",))
    assert whole["exports"]["docx"]["fileName"] == "document.docx"
    texts = [p.text for p in exported(whole).paragraphs]
    assert texts[0] == "Annual Report" and texts[-1] == "Page two."
    assert "exports" not in restructure_pages(pages)[0]
