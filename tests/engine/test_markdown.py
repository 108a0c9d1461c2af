"""Markdown rendering: each label's handler, pretty vs plain, ignored labels, formula numbers, images."""

from __future__ import annotations

import numpy as np
import pytest

from docengine.markdown import DEFAULT_IGNORE_LABELS, format_block_content, image_path, render_markdown
from docengine.types import Block

CENTER = '<div style="text-align: center;">'


def md(*blocks: Block, prettify: bool = True, show_formula_number: bool = False,
       ignore: set[str] | None = None, width: int = 1000, **switches: bool) -> str:
    ignore_labels = set(DEFAULT_IGNORE_LABELS) if ignore is None else ignore
    text, _ = render_markdown(list(blocks), page_width=width, prettify=prettify, ignore_labels=ignore_labels,
                              show_formula_number=show_formula_number, **switches)
    return text


def block(label: str, content: str = "", bbox: list[int] | None = None, **kw) -> Block:
    return Block(label=label, bbox=bbox or [10, 10, 110, 60], content=content, **kw)


def picture(label: str = "image", bbox: list[int] | None = None, content: str = "") -> Block:
    bbox = bbox or [100, 0, 550, 300]
    return Block(label=label, bbox=bbox, content=content, image_path=image_path(label, bbox),
                 image=np.full((bbox[3] - bbox[1], bbox[2] - bbox[0], 3), 200, np.uint8))


def test_doc_title_is_one_line_h1():
    assert md(block("doc_title", "Annual Re-\nport on\nParsing")) == "# Annual Report on Parsing"


@pytest.mark.parametrize(("content", "expected"), [
    ("Introduction", "## Introduction"),
    ("1 Introduction", "## 1 Introduction"),
    ("1.2 Methods", "### 1.2 Methods"),
    ("1.2.3 Details", "#### 1.2.3 Details"),
    ("2. Results.", "## 2. Results"),
    ("3、结论", "## 3、 结论"),
    ("(2) Case", "## (2) Case"),
    ("Scope of\nwork", "## Scope of work"),
])
def test_paragraph_title_level_from_numbering(content, expected):
    assert md(block("paragraph_title", content)) == expected


def test_paragraph_title_uses_title_level_when_set():
    title = block("paragraph_title", "1.2 Methods", extra={"title_level": 1})
    assert md(title) == "## 1.2 Methods"
    assert md(block("paragraph_title", "Scope", extra={"title_level": 3})) == "#### Scope"


@pytest.mark.parametrize("label", ["text", "ocr", "vertical_text", "reference_content", "vision_footnote"])
def test_text_lines_become_paragraphs(label):
    assert md(block(label, "one\n\ntwo\nthree")) == "one\n\ntwo\n\nthree"


@pytest.mark.parametrize("label", ["figure_title", "table_title", "chart_title"])
def test_captions_centred_only_when_pretty(label):
    assert md(block(label, "Figure 1:\nA plot")) == f"{CENTER}Figure 1: A plot</div>\n"
    assert md(block(label, "Figure 1:\nA plot"), prettify=False) == "Figure 1:\nA plot"


def test_content_keeps_line_breaks_as_hard_breaks():
    assert md(block("content", "1 Intro ... 3\n2 Methods ... 9")) == "1 Intro ... 3  \n2 Methods ... 9"


def test_abstract_and_reference_headings():
    assert md(block("abstract", "Abstract\nWe parse documents.")) == "## Abstract\nWe parse documents."
    assert md(block("abstract", "Abstract We parse.")) == "## Abstract\n We parse."
    assert md(block("abstract", "We parse documents.")) == "We parse documents."
    assert md(block("reference", "References\n[1] A. Author")) == "## References\n[1] A. Author"
    assert md(block("reference", "参考文献\n[1] 作者")) == "## 参考文献\n[1] 作者"


def test_algorithm_stripped_of_surrounding_newlines():
    assert md(block("algorithm", "\n\nfor i in x:\n  y\n")) == "for i in x:\n  y"


def test_formulas_as_is_and_number_only_as_tag():
    formula, number = block("display_formula", "$$E = mc^2$$"), block("formula_number", "(1)")
    assert md(formula, number) == "$$E = mc^2$$"
    assert md(formula, number, show_formula_number=True) == "$$E = mc^2 \\tag*{(1)}$$"
    assert md(block("inline_formula", "$x$")) == "$x$"
    assert md(number, show_formula_number=True) == ""
    # a number that does not follow its formula is never attached
    assert md(number, formula, show_formula_number=True) == "$$E = mc^2$$"


TABLE = ("<html><body><table><tr><td>a</td><td colspan=\"2\">b</td></tr><tr><th>c</th></tr></table>"
         "</body></html>")


def test_table_pretty_has_border_and_centred_cells():
    out = md(block("table", TABLE))
    assert out.startswith("\n<html><body><table border=1 style='margin: auto; word-wrap: break-word;'>")
    assert "<td style='text-align: center; word-wrap: break-word;'>a</td>" in out
    assert "<td style='text-align: center; word-wrap: break-word;' colspan=\"2\">b</td>" in out
    assert "<th style='text-align: center; word-wrap: break-word;'>c</th>" in out


def test_table_plain_strips_html_and_body():
    out = md(block("table", TABLE), prettify=False)
    assert out == "\n<table><tr><td>a</td><td colspan=\"2\">b</td></tr><tr><th>c</th></tr></table>"


def test_image_pretty_width_is_share_of_page_width():
    img = picture(bbox=[100, 0, 550, 300])
    assert md(img) == (f'{CENTER}<img src="imgs/img_in_image_box_100_0_550_300.jpg" alt="Image" '
                       'width="45%" /></div>\n')
    assert 'width="22%"' in md(img, width=2000)


def test_image_plain_and_ocr_text_only_when_asked():
    img = picture(content="caption text")
    assert md(img, prettify=False) == "![](imgs/img_in_image_box_100_0_550_300.jpg)"
    assert md(img, prettify=False, use_ocr_for_image_block=True) == (
        "![](imgs/img_in_image_box_100_0_550_300.jpg)\n\ncaption text")


def test_seal_text_shown_with_seal_recognition():
    seal = picture("seal", content="Official Seal")
    assert "Official Seal" not in md(seal)
    assert md(seal, use_seal_recognition=True).endswith("\n\nOfficial Seal")


def test_chart_is_table_with_recognition_else_image():
    chart = picture("chart", content="Year | Sales\n2023 | 5\n2024 | 7")
    table = md(chart, use_chart_recognition=True)
    assert "<th style='text-align: center;'>Year</th><th style='text-align: center;'>Sales</th>" in table
    assert table.count("<tr>") == 3 and "<td style='text-align: center;'>7</td>" in table
    assert md(chart) == md(chart, prettify=True) and "img_in_chart_box_100_0_550_300.jpg" in md(chart)


def test_ignored_labels_left_out_but_their_images_kept():
    blocks = [block("header", "Running head"), block("text", "Body"), block("footer", "Page 1"),
              block("number", "7"), block("aside_text", "Side"), block("footnote", "Note"),
              picture("header_image", bbox=[0, 0, 50, 20])]
    text, images = render_markdown(blocks, page_width=1000, prettify=True, show_formula_number=False,
                                   ignore_labels=set(DEFAULT_IGNORE_LABELS))
    assert text == "Body"
    assert list(images) == ["imgs/img_in_header_image_box_0_0_50_20.jpg"]
    assert images["imgs/img_in_header_image_box_0_0_50_20.jpg"].shape == (20, 50, 3)
    everything = md(*blocks, ignore=set())
    assert everything.startswith("Running head\n\nBody\n\nPage 1\n\n7\n\nSide\n\nNote")
    assert md(block("text", "Body"), block("text", "Tail"), ignore={"text"}) == ""


def test_blocks_join_with_blank_lines_and_empty_outputs_skipped():
    blocks = [block("doc_title", "T"), block("table", ""), block("text", "a"), picture(bbox=[0, 0, 10, 10])]
    blocks[3].image_path = None
    assert md(*blocks) == "# T\n\na"


def test_format_block_content_is_pretty_markdown_of_the_block():
    assert format_block_content(block("paragraph_title", "1.1 Scope"), page_width=1000) == "### 1.1 Scope"
    assert format_block_content(block("figure_title", "Fig"), page_width=1000) == f"{CENTER}Fig</div>\n"
    assert format_block_content(block("formula_number", "(3)"), page_width=1000) == "(3)"
    image = format_block_content(picture(content="ocr"), page_width=900)
    assert 'width="50%"' in image and "ocr" not in image
    chart = picture("chart", content="a|b\n1|2")
    assert "<th" in format_block_content(chart, page_width=1000, use_chart_recognition=True)
    assert "<img" in format_block_content(chart, page_width=1000)
