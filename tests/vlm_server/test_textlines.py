"""Finding a crop's lines: dot leaders the detector does not box, and lines it drops, on rendered pages."""

from __future__ import annotations

import numpy as np
import pymupdf
import pytest

from devkit.documents import char_accuracy, render_page
from vlm_server.ppocr import PPOCR, LineText
from vlm_server.recogniser import OcrRecogniser, Task
from vlm_server.textlines import read_lines, restore_spaces

CONTENTS = [("1 Introduction", "3"), ("1.1 Getting started", "5"), ("2 Usage", "12"), ("2.10 Options", "27")]
PARAGRAPH = [
    "The layout detector first locates regions on the page and orders them for reading.",
    "Each region is then cropped and recognised by the vision language model in parallel.",
    "What the detector misses on a first look is looked at again, closer up and alone.",
]


def contents_page() -> tuple[np.ndarray, list[int]]:
    """A table of contents set as LaTeX sets one: a title, spaced leader dots, the page at the right margin.
    Also the number of dots drawn on each row."""
    doc = pymupdf.open()
    page = doc.new_page(width=420, height=40 + 18 * len(CONTENTS))
    dots = []
    for i, (title, number) in enumerate(CONTENTS):
        y = 30 + 18 * i
        page.insert_text((20, y), title, fontsize=10, fontname="tiro")
        start = 30 + pymupdf.get_text_length(title, fontname="tiro", fontsize=10)
        count = int((370 - start) // 6)
        for k in range(count):
            page.insert_text((start + 6 * k, y), ".", fontsize=10, fontname="tiro")
        page.insert_text((400 - pymupdf.get_text_length(number, fontname="tiro", fontsize=10), y), number,
                         fontsize=10, fontname="tiro")
        dots.append(count)
    return render_page(doc.tobytes(), dpi=144), dots


def test_dot_leaders_are_read_and_each_entry_of_the_contents_is_a_line_of_its_own(
    recogniser: OcrRecogniser,
) -> None:
    image, dots = contents_page()
    got = recogniser.recognise(image, Task.OCR).split("\n")
    assert len(got) == len(CONTENTS), got
    for line, (title, number), drawn in zip(got, CONTENTS, dots, strict=True):
        words = line.split()
        assert " ".join(words[:-1]).replace(".", "").replace(" ", "") \
            == title.replace(".", "").replace(" ", ""), line
        assert words[-1] == number, line
        assert abs(line.count(".") - title.count(".") - drawn) <= 2, (line, drawn)


def test_a_point_inside_a_number_is_no_space_though_tabular_figures_leave_wide_gaps() -> None:
    """"6.10 Functions": the gap after the point (before a narrow "1") is as wide as one between words."""
    mask = np.zeros((20, 200), bool)
    ink = {"6": (0, 10), ".": (12, 14), "1": (20, 24), "0": (27, 37), "F": (60, 70), "n": (72, 80)}
    for x0, x1 in ink.values():
        mask[2:18, x0:x1] = True
    text = "6.10Fn"
    rec = LineText(text, 1.0, tuple((ink[c][0] + ink[c][1]) / 2 for c in text))
    assert restore_spaces(rec, mask) == "6.10 Fn"


class MissingLineDetector(PPOCR):
    """The real detector, except that its first look misses the line whose box holds `y`: the fault a
    detector shows on lines set close to others (margin notes beside a paragraph)."""

    def __init__(self, y: float) -> None:
        super().__init__(threads=1)
        self.y, self.looks = y, 0

    def detect(self, bgr: np.ndarray, scale: float = 1.0) -> list[np.ndarray]:
        quads = super().detect(bgr, scale)
        self.looks += 1
        if self.looks > 1:
            return quads
        return [q for q in quads if not q[:, 1].min() <= self.y <= q[:, 1].max()]


@pytest.fixture(scope="module")
def ocr() -> PPOCR:
    return PPOCR(threads=1)


@pytest.fixture(scope="module")
def paragraph_image() -> np.ndarray:
    doc = pymupdf.open()
    page = doc.new_page(width=480, height=100)
    for i, text in enumerate(PARAGRAPH):
        page.insert_text((20, 30 + 20 * i), text, fontsize=10, fontname="helv")
    return render_page(doc.tobytes(), dpi=144)


def test_a_line_the_detector_misses_is_found_on_a_second_look_and_read_once(
    paragraph_image: np.ndarray,
) -> None:
    middle_line_y = (30 + 20 - 4) * 2 + 16  # the second line's middle, in detector pixels (pad 16)
    detector = MissingLineDetector(middle_line_y)
    lines = read_lines(detector, np.ascontiguousarray(paragraph_image[..., ::-1]))
    assert detector.looks == 2
    assert len(lines) == 3, [ln.text for ln in lines]
    for line, truth in zip(lines, PARAGRAPH, strict=True):
        assert char_accuracy(truth, line.text) >= 0.97, line.text


def test_when_the_detector_misses_nothing_there_is_no_second_look(paragraph_image: np.ndarray) -> None:
    detector = MissingLineDetector(-1.0)
    lines = read_lines(detector, np.ascontiguousarray(paragraph_image[..., ::-1]))
    assert detector.looks == 1
    assert [char_accuracy(t, ln.text) >= 0.97 for ln, t in zip(lines, PARAGRAPH, strict=True)] == [True] * 3


@pytest.mark.parametrize("cut", ["top", "bottom"])
def test_a_neighbours_line_cut_in_half_by_the_crop_is_left_out(
    ocr: PPOCR, paragraph_image: np.ndarray, cut: str
) -> None:
    """Overlapping layout boxes: the crop takes in the lower half of the line above, or the upper half of the
    line below, which would read as nonsense."""
    middle = {"top": (30 - 4) * 2, "bottom": (30 + 40 - 4) * 2}[cut]  # a line's middle, in pixels
    crop = paragraph_image[middle:] if cut == "top" else paragraph_image[:middle]
    whole = PARAGRAPH[1:] if cut == "top" else PARAGRAPH[:2]
    lines = read_lines(ocr, np.ascontiguousarray(crop[..., ::-1]))
    assert len(lines) == 2, [ln.text for ln in lines]
    for line, truth in zip(lines, whole, strict=True):
        assert char_accuracy(truth, line.text) >= 0.97, line.text


def test_a_line_of_its_own_whose_descenders_the_box_cuts_off_is_kept(
    ocr: PPOCR, paragraph_image: np.ndarray
) -> None:
    baseline = (30 + 40) * 2  # the last line's baseline, in pixels: every glyph of it touches the crop's edge
    lines = read_lines(ocr, np.ascontiguousarray(paragraph_image[:baseline, :, ::-1]))
    assert len(lines) == 3, [ln.text for ln in lines]
    assert char_accuracy(PARAGRAPH[2], lines[2].text) >= 0.9, lines[2].text
