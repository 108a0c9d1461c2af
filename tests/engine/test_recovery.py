"""Recovery on boxes and characters built by hand: cut words taken whole, missed lines joined to their box or
given one of their own in the reading order, pictures that are text given back, and nothing changed when
nothing is missed."""

from __future__ import annotations

import numpy as np

from docengine.recovery import drop_text_pictures, grow_to_ink, recover_from_layer, recover_from_lines
from docengine.types import LayoutBox
from tests.engine.test_layertext import line

Box = tuple[float, float, float, float]

PAGE = np.full((400, 600), 255, np.uint8)   # grey page; characters need no ink unless a test draws it


def box(label: str, coords: tuple[float, float, float, float], order: int | None = None) -> LayoutBox:
    return LayoutBox(0, label, 0.9, list(coords), order)


def test_a_page_whose_words_all_lie_in_boxes_comes_back_unchanged() -> None:
    boxes = [box("text", (0, 0, 300, 50), 1)]
    assert recover_from_layer(boxes, line("all inside") + line("here too", y=24), PAGE) is boxes


def test_a_word_a_text_box_cuts_is_taken_whole_but_a_table_is_left_as_it_is() -> None:
    chars = line("Port Authority")       # "Port" at 0..40, "Authority" at 50..140
    grown = recover_from_layer([box("footer", (25, 0, 135, 20), 1)], chars, PAGE)
    assert len(grown) == 1 and grown[0].coordinate == [0, 0, 140, 20]   # and the last glyph whole
    table = box("table", (25, 0, 135, 20))
    out = recover_from_layer([table], chars, PAGE)
    assert table in out and [b.label for b in out if b.recovered] == ["text"]   # "Po" apart


def test_a_missed_line_under_a_paragraph_joins_it() -> None:
    boxes = [box("text", (0, 0, 200, 20), 1)]
    out = recover_from_layer(boxes, line("first line") + line("second line", y=24), PAGE)
    assert [(b.label, b.coordinate) for b in out] == [("text", [0, 0, 200, 44])]
    assert not out[0].recovered


def test_missed_text_away_from_every_box_gets_a_text_box_in_the_reading_order() -> None:
    boxes = [box("paragraph_title", (0, 0, 300, 20), 1), box("header", (0, 380, 50, 395)),
             box("text", (0, 300, 300, 320), 2)]
    chars = line("title") + line("a paragraph the model missed", y=150) + line("end", y=300)
    out = recover_from_layer(boxes, chars, PAGE)
    assert [b.label for b in out] == ["paragraph_title", "text", "header", "text"]
    recovered = out[1]
    assert recovered.recovered and recovered.score == 0.0
    x1, y1, x2, y2 = recovered.coordinate
    assert x1 <= 0 and y1 < 150 and x2 >= 280 and y2 > 170
    assert [b.order for b in out] == [1, 2, None, 3]


def test_a_picture_box_that_is_all_text_is_given_back_as_text() -> None:
    page = PAGE.copy()
    chars = [c for n in range(4) for c in line("a table of contents line", y=30 * n)]
    for c in chars:
        x1, y1, x2, y2 = (int(v) for v in c.box)
        page[y1 + 4:y2 - 4, x1 + 2:x2 - 2] = 0
    out = recover_from_layer([box("image", (0, 0, 300, 130))], chars, page)
    assert [b.label for b in out] == ["text"] and out[0].recovered
    plot = PAGE.copy()
    plot[0:130, 0:300:7] = 0          # a plot's lines, which its labels do not cover
    assert recover_from_layer([box("image", (0, 0, 300, 130))], chars, plot)[0].label == "image"


def test_detected_lines_no_box_covers_become_blocks() -> None:
    boxes = [box("text", (0, 0, 300, 20), 1)]
    out = recover_from_lines(boxes, [(0, 200, 250, 220), (0, 224, 200, 244), (400, 350, 500, 370)],
                             (600, 400))
    assert [b.recovered for b in out] == [False, True, True]
    assert out[1].coordinate[1] < 200 and out[1].coordinate[3] > 244


def test_a_box_grows_over_ink_that_runs_past_its_edges_but_not_across_a_gutter() -> None:
    page = PAGE.copy()
    for x in range(10, 190, 12):      # glyphs 8 px wide, 4 px apart, from x = 10 to 190
        page[100:120, x:x + 8] = 0
    page[100:120, 260:300] = 0        # another column, 70 px away
    grown = grow_to_ink([box("footer", (40, 95, 150, 125))], page)
    assert grown[0].coordinate == [10, 95, 186, 125]
    assert grow_to_ink([box("table", (40, 95, 150, 125))], page)[0].coordinate == [40, 95, 150, 125]


def test_a_box_does_not_grow_into_the_boxes_beside_it_even_along_a_rule() -> None:
    """A running head of three boxes over a rule: the third box must not take in the other two's text."""
    page = PAGE.copy()
    for x0, x1 in ((20, 40), (200, 280), (450, 540)):
        page[100:116, x0:x1] = 0
    page[120:122, 20:540] = 0         # the rule under the running head, inside the boxes' band
    heads = [box("header", (20, 98, 40, 124)), box("header", (200, 98, 280, 124)),
             box("header", (450, 98, 540, 124))]
    assert [b.coordinate for b in grow_to_ink(heads, page)] == [b.coordinate for b in heads]


def test_a_box_grows_over_its_own_cut_glyphs_but_stops_at_the_box_beside_it() -> None:
    page = PAGE.copy()
    for x in range(20, 120, 12):      # one line of glyphs 8 px wide, 4 px apart, from x = 20 to 124
        page[100:116, x:x + 8] = 0
    first, second = box("text", (20, 98, 62, 124)), box("text", (80, 98, 130, 124))
    assert [b.coordinate for b in grow_to_ink([first, second], page)] == [[20, 98, 76, 124],
                                                                          [80, 98, 130, 124]]
    around = box("image", (0, 50, 200, 200))  # a screenshot with the line in it
    assert grow_to_ink([around, first], page)[1].coordinate == [20, 98, 124, 124]


def glyph_rows(gray: np.ndarray, rows: int, x: int = 20, y: int = 20) -> list[Box]:
    """Draw `rows` lines of glyph-sized blots; return their line boxes."""
    lines = []
    for r in range(rows):
        top = y + 30 * r
        for left in range(x, x + 200, 14):
            gray[top:top + 16, left:left + 9] = 0
        lines.append((float(x), float(top), float(x + 200), float(top + 16)))
    return lines


def test_a_picture_without_a_layer_whose_ink_is_lines_of_glyphs_is_given_back_as_text() -> None:
    gray = PAGE.copy()
    lines = glyph_rows(gray, 4)
    boxes = [box("image", (10, 10, 240, 150), 1), box("text", (10, 300, 300, 330), 2)]
    asked = []

    def lines_in(region: Box) -> list[Box]:
        asked.append(region)
        return lines
    assert [b.label for b in drop_text_pictures(boxes, gray, lines_in)] == ["text"]
    assert asked == [(10, 10, 240, 150)]
    assert drop_text_pictures(boxes, gray, lambda _: lines[:2]) is boxes   # half its ink in no line
    assert drop_text_pictures(boxes, gray, lambda _: []) is boxes   # no line found


def test_a_photo_or_a_plot_is_kept_without_running_the_detector() -> None:
    gray = PAGE.copy()
    gray[20:140, 20:220] = 40                   # a photo: one large dark component
    glyph_rows(gray, 1, y=150)
    boxes = [box("image", (10, 10, 240, 180), 1)]

    def lines_in(region: Box) -> list[Box]:
        raise AssertionError("the detector ran on a photo")
    assert drop_text_pictures(boxes, gray, lines_in) is boxes
