"""`/restructure-pages`: cross-page tables, title levels, global ids and concatenation, on JSON alone."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest

from docengine.assemble import assemble_page
from docengine.errors import InvalidInputError
from docengine.options import AssembleOptions
from docengine.restructure import restructure_pages
from docengine.titles import numbering_style, relevel_paragraph_titles
from docengine.types import Block

W, H = 1000, 1400
CENTER = '<div style="text-align: center;">'


def row(*cells: str, tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def table(*rows: str) -> str:
    return "<table>" + "".join(rows) + "</table>"


HEAD = row("Model", "Pages", "Score")


Box = tuple[int, int, int, int]


def blk(label: str, content: str = "", bbox: Box = (100, 100, 900, 140)) -> dict[str, Any]:
    return {"block_label": label, "block_content": content, "block_bbox": list(bbox)}


def pruned(*blocks: dict[str, Any], width: int = W, **settings: Any) -> dict[str, Any]:
    entries = [{**b, "block_id": i, "block_order": None, "group_id": i} for i, b in enumerate(blocks)]
    model_settings = {"use_chart_recognition": False, "format_block_content": False,
                      "markdown_ignore_labels": ["header", "footer", "number"], **settings}
    return {"page_count": None, "width": width, "height": H, "model_settings": model_settings,
            "layout_det_res": {"boxes": []}, "parsing_res_list": entries}


HEADER = (blk("header", "Internal draft", (0, 0, 200, 30)),)
FOOTER = (blk("footer", "Page 1", (0, 1350, 200, 1390)),)


def two_page_table(first_box: Box = (100, 900, 900, 1300), second_box: Box = (100, 100, 900, 400),
                   second_rows: tuple[str, ...] = (HEAD, row("C", "3", "0.7"), row("D", "4", "0.6")),
                   before_second: tuple[dict[str, Any], ...] = HEADER,
                   after_first: tuple[dict[str, Any], ...] = FOOTER,
                   ) -> list[tuple[dict[str, Any], dict[str, str] | None]]:
    first = table(HEAD, row("A", "1", "0.9"), row("B", "2", "0.8"))
    page1 = pruned(blk("text", "Intro text", (100, 100, 900, 200)), blk("table", first, first_box),
                   *after_first)
    page2 = pruned(*before_second, blk("table", table(*second_rows), second_box),
                   blk("text", "After the table", (100, 450, 900, 500)))
    return [(page1, {"imgs/a.jpg": "AAAA"}), (page2, None)]


def table_of(result: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in result["prunedResult"]["parsing_res_list"] if b["block_label"] == "table")


def test_table_split_over_two_pages_is_merged_without_repeated_header():
    out = restructure_pages(two_page_table())
    first, second = table_of(out[0]), table_of(out[1])
    assert first["block_content"] == table(HEAD, row("A", "1", "0.9"), row("B", "2", "0.8"),
                                           row("C", "3", "0.7"), row("D", "4", "0.6"))
    assert second["block_content"] == ""
    assert second["global_group_id"] == first["global_block_id"] == 1
    assert second["global_block_id"] == 4
    assert out[0]["markdown"]["text"].count("<tr>") == 5
    assert "<table" not in out[1]["markdown"]["text"]
    assert out[1]["markdown"]["text"] == "After the table"


def test_global_ids_run_across_pages_and_page_fields_stay():
    pages = two_page_table()
    out = restructure_pages(pages, merge_tables=False)
    ids = [b["global_block_id"] for r in out for b in r["prunedResult"]["parsing_res_list"]]
    groups = [b["global_group_id"] for r in out for b in r["prunedResult"]["parsing_res_list"]]
    assert ids == groups == list(range(6))
    assert [b["block_id"] for b in out[1]["prunedResult"]["parsing_res_list"]] == [0, 1, 2]
    assert out[1]["prunedResult"]["layout_det_res"] == {"boxes": []}
    assert out[0]["markdown"]["images"] == {"imgs/a.jpg": "AAAA"} and "images" not in out[1]["markdown"]
    assert table_of(out[1])["block_content"].count("<tr>") == 3
    assert pages == two_page_table()  # inputs untouched
    json.dumps(out)


def test_widths_differing_by_ten_percent_are_not_merged():
    out = restructure_pages(two_page_table(second_box=(100, 100, 800, 400)))  # 700 vs 800 wide
    assert table_of(out[1])["block_content"] != ""
    out = restructure_pages(two_page_table(second_box=(100, 100, 830, 400)))  # 730 vs 800: under 10 %
    assert table_of(out[1])["block_content"] == ""


def test_different_column_counts_are_not_merged():
    out = restructure_pages(two_page_table(second_rows=(row("x", "y"), row("C", "3"))))
    assert table_of(out[1])["block_content"].count("<tr>") == 2
    assert table_of(out[0])["block_content"].count("<tr>") == 3


def test_last_row_matching_first_data_row_is_enough():
    # the first part has a wider caption row, so total widths differ; its last row matches the next first row
    page1 = pruned(blk("table", table('<tr><td colspan="4">Sales</td></tr>', HEAD, row("A", "1", "0.9")),
                       (100, 900, 900, 1300)))
    page2 = pruned(blk("table", table(row("B", "2", "0.8")), (100, 100, 900, 400)))
    out = restructure_pages([(page1, None), (page2, None)])
    assert table_of(out[1])["block_content"] == ""
    assert table_of(out[0])["block_content"].endswith(
        row("A", "1", "0.9") + row("B", "2", "0.8") + "</table>")
    page2 = pruned(blk("table", table(row("B", "2")), (100, 100, 900, 400)))
    assert table_of(restructure_pages([(page1, None), (page2, None)])[1])["block_content"]


def test_rowspan_and_colspan_count_in_total_columns():
    spanned = ('<tr><td rowspan="2">C</td><td colspan="2">3</td></tr>', row("0.7", "x"))
    out = restructure_pages(two_page_table(second_rows=spanned))
    assert table_of(out[1])["block_content"] == ""
    huge = ('<tr><td rowspan="999999999" colspan="999999999">x</td></tr>',)  # bounded, answers at once
    assert table_of(restructure_pages(two_page_table(second_rows=huge))[1])["block_content"]


def test_blocks_around_the_break_decide():
    text_after = (blk("text", "Closing remarks", (100, 1320, 900, 1340)),)
    assert table_of(restructure_pages(two_page_table(after_first=text_after))[1])["block_content"]
    text_before = (blk("text", "A new section", (100, 40, 900, 90)),)
    assert table_of(restructure_pages(two_page_table(before_second=text_before))[1])["block_content"]
    continued = (blk("figure_title", "Table 1 (continued)", (100, 40, 900, 90)),)
    assert table_of(restructure_pages(two_page_table(before_second=continued))[1])["block_content"] == ""
    allowed = (blk("number", "2", (0, 0, 50, 30)), blk("seal", "", (900, 0, 990, 90)))
    assert table_of(restructure_pages(two_page_table(before_second=allowed))[1])["block_content"] == ""


def test_up_to_five_header_rows_are_skipped():
    heads = [row(f"H{i}", f"h{i}", f"x{i}") for i in range(6)]
    page1 = pruned(blk("table", table(*heads, row("a", "b", "c")), (100, 100, 900, 1300)))
    page2 = pruned(blk("table", table(*heads, row("d", "e", "f")), (100, 100, 900, 1300)))
    merged = table_of(restructure_pages([(page1, None), (page2, None)])[0])["block_content"]
    # five identical rows are dropped; the sixth is kept as data
    assert merged == table(*heads, row("a", "b", "c"), heads[5], row("d", "e", "f"))


def test_table_over_three_pages_collects_in_the_first():
    pages = [pruned(blk("table", table(HEAD, row(str(i), "1", "2")), (100, 100, 900, 1300)))
             for i in range(3)]
    out = restructure_pages([(p, None) for p in pages])
    assert table_of(out[0])["block_content"] == table(HEAD, row("0", "1", "2"), row("1", "1", "2"),
                                                      row("2", "1", "2"))
    assert [table_of(r)["global_group_id"] for r in out] == [0, 0, 0]
    assert table_of(out[1])["block_content"] == table_of(out[2])["block_content"] == ""


def title(content: str, height: int = 40, top: int = 100) -> dict[str, Any]:
    return blk("paragraph_title", content, (100, top, 900, top + height))


def titles_md(out: list[dict[str, Any]]) -> list[str]:
    return [line for r in out for line in r["markdown"]["text"].split("\n\n") if line.startswith("#")]


def test_titles_relevelled_by_numbering():
    body = blk("text", "Body", (100, 300, 900, 340))
    pages = [(pruned(title("1 Intro"), title("1.1 Scope", top=200), body), None),
             (pruned(title("1.2 Terms"), title("2 Methods", top=200)), None)]
    assert titles_md(restructure_pages(pages)) == [
        "## 1 Intro", "### 1.1 Scope", "### 1.2 Terms", "## 2 Methods"]


def test_numbering_beats_dots_when_styles_and_heights_agree():
    # "A." titles are second-level by style, and the smaller height agrees; without relevel they are "##"
    pages = [(pruned(title("I. Background", 60), title("A. Data", 30, 200), title("B. Tools", 30, 300),
                     title("II. Results", 60, 400)), None)]
    assert titles_md(restructure_pages(pages)) == ["## I. Background", "### A. Data", "### B. Tools",
                                                   "## II. Results"]
    assert titles_md(restructure_pages(pages, relevel_titles=False))[1] == "## A. Data"


def test_numbering_and_height_outvote_order_of_appearance():
    # "A." comes first, so by order it would be top-level; its letter style and smaller height say level 2
    pages = [(pruned(title("A. Preface", 30), title("1 Intro", 60, 200)), None)]
    assert titles_md(restructure_pages(pages)) == ["### A. Preface", "## 1 Intro"]


def test_unnumbered_titles_use_keywords_then_height():
    pages = [(pruned(title("Overview", 60), title("Details", 30, 200), title("References", 30, 300),
                     title("More details", 30, 400)), None)]
    assert titles_md(restructure_pages(pages)) == ["## Overview", "### Details", "## References",
                                                   "### More details"]


def test_line_height_is_bbox_height_over_lines():
    blocks = [Block("paragraph_title", [0, 0, 500, 60], "Two line\ntitle here"),  # 30 per line
              Block("paragraph_title", [0, 100, 500, 160], "Big title"),           # 60
              Block("paragraph_title", [0, 200, 500, 230], "Small title")]         # 30
    relevel_paragraph_titles(blocks)
    assert [b.extra["title_level"] for b in blocks] == [2, 1, 2]


@pytest.mark.parametrize(("text", "expected"), [
    ("1 Intro", ("number", 1)), ("1.1 Scope", ("number", 2)), ("2.3.4. Deep", ("number", 3)),
    ("(1) Item", ("bracket", 4)), ("（2）条目", ("bracket", 4)), ("3) Item", ("bracket", 4)),
    ("IV. Results", ("roman", 1)), ("ii Notes", ("roman", 1)),
    ("一、引言", ("chinese", 1)), ("第二章 方法", ("chinese", 1)), ("一种方法", (None, -1)),
    ("B. Tools", ("letter", 2)), ("A Study of Parsing", (None, -1)), ("Overview", (None, -1)),
])
def test_numbering_styles(text, expected):
    assert numbering_style(text) == expected


def test_leading_hashes_stripped_and_image_paths_restored():
    page = pruned(blk("paragraph_title", "## 1.1 Scope"), blk("image", "", (100, 200, 600, 500)),
                  blk("chart", "", (100, 600, 600, 900)), blk("text", "#hashtag stays"))
    images = {"imgs/img_in_image_box_100_200_600_500.jpg": "QUJD"}
    out = restructure_pages([(page, images)], relevel_titles=False)
    res = out[0]["prunedResult"]["parsing_res_list"]
    assert res[0]["block_content"] == "1.1 Scope" and res[3]["block_content"] == "#hashtag stays"
    text = out[0]["markdown"]["text"]
    assert text.startswith("### 1.1 Scope\n\n")
    assert '<img src="imgs/img_in_image_box_100_200_600_500.jpg" alt="Image" width="50%" />' in text
    assert "imgs/img_in_chart_box_100_600_600_900.jpg" in text
    plain = restructure_pages([(page, None)], prettify=False)[0]["markdown"]["text"]
    assert "![](imgs/img_in_image_box_100_200_600_500.jpg)" in plain


def test_markdown_options_and_ignore_labels_from_model_settings():
    page = pruned(blk("header", "Running head"), blk("display_formula", "$$x=1$$"),
                  blk("formula_number", "(1)"), blk("footnote", "A note"))
    out = restructure_pages([(page, None)], show_formula_number=True)
    assert out[0]["markdown"]["text"] == "$$x=1 \\tag*{(1)}$$\n\nA note"


def test_formatted_block_content_is_formatted_again():
    page = pruned(title("## 1 Intro"), title("### 1.1 Scope", top=200), format_block_content=True)
    res = restructure_pages([(page, None)])[0]["prunedResult"]["parsing_res_list"]
    assert [r["block_content"] for r in res] == ["## 1 Intro", "### 1.1 Scope"]


def test_concatenation_gives_one_document():
    pages = two_page_table()
    pages[1] = (pages[1][0], {"imgs/b.jpg": "BBBB"})
    out = restructure_pages(pages, concatenate_pages=True)
    assert len(out) == 1
    doc = out[0]["prunedResult"]
    assert doc["page_count"] == 2 and (doc["width"], doc["height"]) == (W, H)
    assert doc["layout_det_res"] == [{"boxes": []}, {"boxes": []}]
    assert [b["block_id"] for b in doc["parsing_res_list"]] == list(range(6))
    assert [b["global_block_id"] for b in doc["parsing_res_list"]] == list(range(6))
    # group_id stays the page's own (the second page's table is its block 1); global_group_id is the merge
    assert [b["group_id"] for b in doc["parsing_res_list"]] == [0, 1, 2, 0, 1, 2]
    assert doc["parsing_res_list"][4]["global_group_id"] == 1
    # block_order counts on over the document: header, footer and tables are outside the reading flow
    assert [b["block_order"] for b in doc["parsing_res_list"]] == [1, None, None, None, None, 2]
    assert out[0]["markdown"]["images"] == {"imgs/a.jpg": "AAAA", "imgs/b.jpg": "BBBB"}
    assert out[0]["markdown"]["text"].startswith("Intro text\n\n\n<table")
    assert out[0]["markdown"]["text"].endswith("</table>\n\nAfter the table")
    assert "images" not in restructure_pages(
        pages, concatenate_pages=True, return_markdown_images=False)[0]["markdown"]
    json.dumps(out)


def test_concatenation_keeps_the_first_pages_spotting_and_lists_the_per_page_results():
    first = {**pruned(blk("spotting", "Hello"), use_layout_detection=False, use_doc_preprocessor=True),
             "spotting_res": {"rec_polys": [[[0, 0], [9, 0], [9, 9], [0, 9]]], "rec_texts": ["Hello"]},
             "doc_preprocessor_res": {"angle": 90}}
    second = {**pruned(blk("spotting", "World"), use_layout_detection=False, use_doc_preprocessor=True),
              "doc_preprocessor_res": {"angle": 0}}
    for page in (first, second):
        del page["layout_det_res"]   # as /layout-parsing answers without layout detection
    doc = restructure_pages([(first, None), (second, None)], concatenate_pages=True)[0]["prunedResult"]
    assert list(doc) == ["page_count", "width", "height", "model_settings", "parsing_res_list",
                         "spotting_res", "doc_preprocessor_res"]
    assert doc["spotting_res"] == first["spotting_res"]
    assert doc["doc_preprocessor_res"] == [{"angle": 90}, {"angle": 0}]
    assert [b["block_order"] for b in doc["parsing_res_list"]] == [1, 2]


def test_only_paddlex_keys_of_a_page_are_written_back():
    page = {**pruned(blk("text", "Body")), "extra": {"kept": False}, "input_path": "x", "page_index": 3}
    out = restructure_pages([(page, None)])[0]["prunedResult"]
    assert list(out) == ["page_count", "width", "height", "model_settings", "parsing_res_list",
                         "layout_det_res"]
    off = restructure_pages([(pruned(blk("text", "Body"), use_layout_detection=False), None)])
    assert "layout_det_res" not in off[0]["prunedResult"]   # layout off: left out, as PaddleX writes it


def test_malformed_pages_are_refused():
    with pytest.raises(InvalidInputError):
        restructure_pages([({"width": 10}, None)])
    with pytest.raises(InvalidInputError, match=r"parsing_res_list\[0\]"):
        restructure_pages([({"parsing_res_list": [{"block_label": "text", "block_bbox": [1, 2]}]}, None)])


def test_pages_without_model_settings_use_defaults():
    page = {"parsing_res_list": [blk("header", "Head", (0, 0, 10, 10)),
                                 blk("text", "Body", (0, 20, 400, 40))]}
    out = restructure_pages([(copy.deepcopy(page), None)])
    assert out[0]["markdown"]["text"] == "Body"


def assembled(format_block_content: bool) -> list[dict[str, Any]]:
    """Two pages straight from `assemble_page`, as `restructurePages` inside `/layout-parsing` gets them."""
    blank = np.full((H, W, 3), 255, np.uint8)
    pages = [
        [Block("paragraph_title", [100, 100, 900, 140], "1 Intro"),
         Block("figure_title", [100, 860, 900, 890], "Table 1:\nScores"),
         Block("image", [100, 200, 500, 600], "", image_path="imgs/img_in_image_box_100_200_500_600.jpg",
               image=blank[200:600, 100:500]),
         Block("table", [100, 900, 900, 1300], table(HEAD, row("A", "1", "0.9"))),
         Block("footer", [0, 1350, 200, 1390], "Page 1")],
        [Block("header", [0, 0, 200, 30], "Internal draft"),
         Block("table", [100, 100, 900, 400], table(HEAD, row("B", "2", "0.8"))),
         Block("paragraph_title", [100, 450, 900, 480], "1.1 Scope")],
    ]
    options = AssembleOptions(visualize=False, format_block_content=format_block_content)
    return [assemble_page(blank, [], blocks, options) for blocks in pages]


@pytest.mark.parametrize("formatted", [False, True])
def test_assembled_pages_restructure_the_same_whether_formatted_or_not(formatted):
    entries = assembled(formatted)
    out = restructure_pages([(e["prunedResult"], e["markdown"]["images"]) for e in entries])
    text = out[0]["markdown"]["text"]
    image = '<img src="imgs/img_in_image_box_100_200_500_600.jpg" alt="Image" width="40%" />'
    caption = f"{CENTER}Table 1: Scores</div>\n"
    assert text.startswith(f"## 1 Intro\n\n{caption}\n\n{CENTER}{image}</div>\n\n\n\n<table border=1")
    assert text.count("<tr>") == 3 and text.count("<table") == 1
    assert out[1]["markdown"]["text"] == "### 1.1 Scope"
    assert out[0]["markdown"]["images"] == entries[0]["markdown"]["images"]
    assert set(out[0]["markdown"]["images"]) == {"imgs/img_in_image_box_100_200_500_600.jpg"}
    plain = restructure_pages([(e["prunedResult"], None) for e in assembled(False)])
    assert [r["markdown"]["text"] for r in out] == [r["markdown"]["text"] for r in plain]
