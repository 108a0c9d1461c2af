"""OTSL -> HTML: spans, ragged rows, escaping, and model output that is not OTSL at all."""

from __future__ import annotations

import random

import pytest

from docengine.recognition.otsl import best_width, otsl_to_html, parse_rows


def table(*rows: str) -> str:
    return "<table>" + "".join(f"<tr>{r}</tr>" for r in rows) + "</table>"


def test_plain_grid():
    assert otsl_to_html("<fcel>a<fcel>b<nl><fcel>1<ecel><nl>") == table(
        "<td>a</td><td>b</td>", "<td>1</td><td></td>")


def test_colspan_rowspan_and_both():
    otsl = ("<fcel>Name<fcel>Score<lcel><lcel><nl>"
            "<fcel>Ann<fcel>1<fcel>2<fcel>3<nl>"
            "<fcel>Group<lcel><fcel>x<fcel>y<nl>"
            "<ucel><xcel><fcel>z<ecel><nl>")
    assert otsl_to_html(otsl) == table(
        '<td>Name</td><td colspan="3">Score</td>',
        "<td>Ann</td><td>1</td><td>2</td><td>3</td>",
        '<td rowspan="2" colspan="2">Group</td><td>x</td><td>y</td>',
        "<td>z</td><td></td>")


def test_rowspan_from_ucel_and_empty_cell_can_span():
    assert otsl_to_html("<fcel>a<ecel><nl><ucel><ucel><nl><fcel>b<fcel>c<nl>") == table(
        '<td rowspan="2">a</td><td rowspan="2"></td>', "", "<td>b</td><td>c</td>")


def test_text_is_stripped_and_escaped():
    assert otsl_to_html('<fcel>  a < b & "c"\n<fcel><b>bold</b><nl>') == table(
        "<td>a &lt; b &amp; &quot;c&quot;</td><td>&lt;b&gt;bold&lt;/b&gt;</td>")


def test_ragged_rows_are_padded_to_the_cheapest_width():
    # widths 3, 1, 3, 4: width 3 costs 0+2+0+1 = 3, the least; the long row loses a trailing empty cell
    otsl = "<fcel>a<fcel>b<fcel>c<nl><fcel>d<nl><fcel>e<fcel>f<fcel>g<nl><fcel>h<ecel><ecel><ecel><nl>"
    assert otsl_to_html(otsl) == table(
        "<td>a</td><td>b</td><td>c</td>",
        "<td>d</td><td></td><td></td>",
        "<td>e</td><td>f</td><td>g</td>",
        "<td>h</td><td></td><td></td>")


def test_width_never_cuts_a_filled_cell():
    otsl = "<fcel>a<nl><fcel>b<nl><fcel>c<nl><ecel><ecel><ecel><fcel>d<nl>"
    assert best_width(parse_rows(otsl)) == 4     # 3 rows of 1 would prefer width 1
    empty3 = "<td></td>" * 3
    assert otsl_to_html(otsl) == table(
        f"<td>a</td>{empty3}", f"<td>b</td>{empty3}", f"<td>c</td>{empty3}", f"{empty3}<td>d</td>")


def test_ties_go_to_the_narrowest_width():
    assert best_width(parse_rows("<ecel><nl><ecel><ecel><ecel><nl>")) == 1


def test_missing_final_nl_blank_lines_and_leading_text():
    assert otsl_to_html("junk<fcel>a<fcel>b<nl><nl>\n<fcel>c<fcel>d") == table(
        "<td>a</td><td>b</td>", "<td>c</td><td>d</td>")


def test_orphan_merge_tokens_become_empty_cells():
    assert otsl_to_html("<lcel><fcel>a<nl><ucel><xcel><nl>") == table(
        '<td></td><td rowspan="2">a</td>', "<td></td>")


def test_text_after_a_merge_token_has_no_cell():
    assert otsl_to_html("<fcel>a<lcel>lost<nl>") == table('<td colspan="2">a</td>')


def test_unknown_tags_are_text_as_in_paddlex():
    assert otsl_to_html("<fcel><ched>Head<nl>") == table("<td>&lt;ched&gt;Head</td>")


@pytest.mark.parametrize("text", [
    "", "   ", "plain words", "<table><tr><td>1</td></tr></table>", "<nl><nl>", "<lcel><ucel><nl><xcel>",
])
def test_no_cell_gives_empty_string(text):
    assert otsl_to_html(text) == ""


def test_random_garbage_never_raises():
    rng = random.Random(7)
    pieces = ["<fcel>", "<ecel>", "<lcel>", "<ucel>", "<xcel>", "<nl>", "x", "<", "&", " ", "<fcel", "\n"]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
        html = otsl_to_html(text)
        assert html == "" or (html.startswith("<table><tr>") and html.endswith("</tr></table>"))
        assert html.count("<tr>") == html.count("</tr>")
