"""Block text post-processing: repetition cut, LaTeX delimiters, table OTSL, chart table."""

from __future__ import annotations

import pytest

from docengine.recognition.textpost import (
    normalize_latex_delimiters,
    postprocess,
    table_to_html,
    truncate_repetitive_content,
)

# --- repetition ---------------------------------------------------------------------------------------------


def test_short_output_is_never_cut():
    text = "ab" * 24                       # 48 chars: a pure repeat, but under 50
    assert truncate_repetitive_content(text) == text


def test_repeating_suffix_of_a_long_line_is_cut():
    assert truncate_repetitive_content("Header: " + "0123456789" * 20) == "Header: "


def test_repeating_suffix_covering_half_or_less_is_kept():
    text = "".join(chr(65 + i % 26) + str(i) for i in range(60)) + "0123456789" * 5   # repeats are 50 of 220
    assert len(text) > 100
    assert truncate_repetitive_content(text) == text


def test_pure_repeat_over_100_chars_is_cut_to_nothing_as_upstream():
    assert truncate_repetitive_content("abcdefgh" * 20) == ""


def test_line_that_is_a_repeated_unit_collapses_to_it():
    assert truncate_repetitive_content("ab" * 40) == "ab"           # 80 chars: rule 1 needs > 100
    assert truncate_repetitive_content("abc" * 20) == "abc"
    text = "abcdefghijklmnopqrstuvwxyz" * 3                         # only 3 repeats
    assert truncate_repetitive_content(text) == text


def test_repeated_lines_collapse_to_the_line():
    text = "Intro\n" + "the same row\n" * 12
    assert truncate_repetitive_content(text) == "the same row"


def test_lines_below_the_thresholds_are_kept():
    few = "a long enough line of text here\n" * 9                     # 9 lines < 10
    assert truncate_repetitive_content(few) == few
    mixed = "".join(f"line {i}\n" for i in range(4)) + "same\n" * 10     # 10 of 14 = 71% < 80%
    assert truncate_repetitive_content(mixed) == mixed


def test_table_threshold_is_5000():
    looping = "<fcel>x<nl>" * 400                                        # 4400 chars
    assert postprocess("table", looping).count("<tr>") == 400
    assert postprocess("text", looping) == ""                            # the same loop in text is cut
    assert postprocess("table", "<fcel>x<nl>" * 460) == ""               # 5060 chars: cut


# --- LaTeX delimiters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    (r"where \(x^2\) holds", "where  $ x^2 $ holds"),
    (r"\[E=mc^2\]", " $$ E=mc^2 $$ "),
    (r"\[\[a\]\]", " $$ a $$ "),
    (r"costs $5 and \(y\)", "costs 5 and  $ y $"),
    ("$x$ stays as it is", "$x$ stays as it is"),
    (r"a lone \( is no pair", r"a lone \( is no pair"),
    (r"mixed \(a\] is no pair", r"mixed \(a\] is no pair"),
])
def test_latex_delimiters(text, expected):
    assert normalize_latex_delimiters("text", text) == expected
    assert postprocess("display_formula", text) == expected


def test_formula_number_loses_every_dollar():
    assert normalize_latex_delimiters("formula_number", r"\((1.2)\)") == "  (1.2) "
    assert postprocess("formula_number", "(3)") == "(3)"


# --- tables and charts --------------------------------------------------------------------------------------


def test_table_otsl_becomes_html():
    assert postprocess("table", "<fcel>a<lcel><nl><fcel>1<fcel>2<nl>") == (
        '<table><tr><td colspan="2">a</td></tr><tr><td>1</td><td>2</td></tr></table>')


def test_table_cell_math_is_normalised_before_conversion():
    assert postprocess("table", r"<fcel>\(x\)<nl>") == "<table><tr><td>$ x $</td></tr></table>"


@pytest.mark.parametrize("text", ["<table><tr><td>1</td></tr></table>", "no table here", ""])
def test_table_text_without_otsl_is_kept(text):
    assert table_to_html(text) == text
    assert postprocess("table", text) == text


def test_only_tables_are_converted():
    otsl = "<fcel>a<nl>"
    assert postprocess("text", otsl) == otsl


def test_chart_content_stays_pipe_text():
    chart = "Year | Sales\n2023 | 10"
    assert postprocess("chart", chart) == chart


def test_missing_text_is_empty():
    assert postprocess("text", None) == ""
    assert postprocess("table", None) == ""
