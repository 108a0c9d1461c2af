"""A block's text from its characters' positions, written as the recogniser writes it, and every reason not to
believe the layer. Characters are built by hand: each test says exactly where its glyphs lie."""

from __future__ import annotations

import numpy as np
import pytest

from docengine.layertext import compose, covered_share, distrust, ink_mask, without_rules
from docengine.textlayer import Char

H = 20.0   # glyph height, px
W = 10.0   # glyph advance, px


def line(text: str, x: float = 0.0, y: float = 0.0, **flags: bool) -> list[Char]:
    """A line of glyphs W apart; a space leaves a gap of one advance and marks the next glyph."""
    chars, space = [], False
    for ch in text:
        if ch == " ":
            space = True
        else:
            chars.append(Char(ch, (x, y, x + W, y + H), space_before=space, **flags))
            space = False
        x += W
    return chars


def test_lines_are_read_top_to_bottom_and_left_to_right_whatever_the_pdf_order() -> None:
    chars = line("second line", y=24) + line("first line")
    assert compose(list(reversed(chars))) == "first line second line"


def test_a_line_end_hyphen_joins_without_a_space_and_cjk_lines_join_without_one() -> None:
    assert compose(line("hyphen-") + line("ation", y=24)) == "hyphen-ation"
    assert compose(line("文档解析") + line("服务。", y=24)) == "文档解析服务。"


def test_a_taller_gap_between_lines_starts_a_paragraph() -> None:
    assert compose(line("one") + line("two", y=24) + line("three", y=60)) == "one two\nthree"


def test_ligatures_and_full_width_forms_are_written_as_the_recogniser_writes_them() -> None:
    assert compose(line("ﬁne oﬃce")) == "fine office"
    assert compose(line("ＡＢ１")) == "AB1" and compose(line("a，b")) == "a,b"
    assert compose(line("中文，标点")) == "中文，标点"


def test_words_are_parted_by_gaps_even_without_a_space_in_the_layer() -> None:
    chars = line("ab") + [Char("c", (40, 0, 50, 20))]
    assert compose(chars) == "ab c"


def test_two_wide_columns_are_read_one_after_the_other_but_line_numbers_stay_with_their_line() -> None:
    left = line("the left column, wide as a column") + line("goes on here", y=24)
    right = line("the right column is as wide as that", x=400) + line("and ends", x=400, y=24)
    assert compose(right + left) == ("the left column, wide as a column goes on here\n"
                                     "the right column is as wide as that and ends")
    numbered = line("12") + line("code line", x=60) + line("13", y=24) + line("more code", x=60, y=24)
    assert compose(numbered) == "12 code line 13 more code"


@pytest.mark.parametrize(("flags", "reason"), [
    ({"invisible": True}, "invisible"),
    ({"unmapped": True}, "unmapped"),
    ({"upright": False}, "rotated"),
])
def test_each_flag_of_a_glyph_is_a_reason_to_recognise(flags: dict[str, bool], reason: str) -> None:
    chars = line("abc") + line("d", x=40, **flags)
    assert distrust(chars, 1.0) == reason


def test_an_invisible_layer_is_believed_when_told_and_an_empty_one_never() -> None:
    assert distrust(line("abc", invisible=True), 1.0, trust_invisible=True) is None
    assert distrust([], 1.0) == "no text"


def test_vertical_writing_and_ink_the_glyphs_leave_uncovered_are_reasons_to_recognise() -> None:
    column = [Char(c, (0, 22 * n, 20, 22 * n + 20)) for n, c in enumerate("竖排文字")]
    assert distrust(column, 1.0) == "rotated"
    assert distrust(line("abc"), 0.5) == "uncovered ink"
    assert distrust(line("abc"), 0.95) is None


def test_the_covered_share_is_the_ink_under_the_glyph_boxes() -> None:
    gray = np.full((40, 200), 255, np.uint8)
    gray[5:15, 2:28] = 0      # under the glyphs of "abc" (0..30 px)
    gray[5:15, 150:176] = 0   # a picture of text beside them
    ink = ink_mask(gray)
    assert covered_share(line("abc"), ink, (0, 0)) == pytest.approx(0.5)
    assert covered_share(line("abc"), ink[:, :100], (0, 0)) == 1.0


def test_a_stray_glyph_without_unicode_is_left_out_and_the_rest_believed() -> None:
    prose = line("a long line of prose set in a math font, whose symbols may lack a map " * 2)
    stray = [Char("\uf6be", (0, 40, W, 40 + H), unmapped=True),
             Char("v", (W, 40, 2 * W, 40 + H), unmapped=True)]
    assert distrust(prose + stray, 1.0) is None
    assert compose(prose + stray).endswith("may lack a map\nv")
    assert distrust(prose[:40] + stray, 1.0) == "unmapped"


def test_rules_and_fills_are_not_ink_the_glyphs_must_cover() -> None:
    gray = np.full((120, 400), 255, np.uint8)
    gray[5:15, 2:28] = 0        # the glyphs of "abc"
    gray[25:27, 0:400] = 0      # a rule under them
    gray[40:120, 0:400] = 0     # a banner
    gray[60:80, 100:130] = 255  # with white glyphs on it
    ink = without_rules(ink_mask(gray), line("abc"))
    assert covered_share(line("abc"), ink, (0, 0)) == 1.0
    assert ink[5:15, 2:28].all()
    picture = np.full((120, 400), 255, np.uint8)
    picture[5:15, 2:28] = 0          # the glyphs of "abc"
    picture[60:80, 200:300:4] = 0    # a picture of text: short strokes stay ink
    assert covered_share(line("abc"), without_rules(ink_mask(picture), line("abc")), (0, 0)) < 0.9
