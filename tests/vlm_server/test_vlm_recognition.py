"""What the offline recogniser reads from real rendered crops, asked through the real server."""

from __future__ import annotations

import io
import re

import numpy as np
import openai
import pymupdf
import pytest
from PIL import Image

from devkit.documents import CHINESE, FORMULA, HEADING, PARAGRAPHS, TABLE, TITLE, char_accuracy
from devkit.pages import Crop, block_crops, typical_page
from docengine.recognition.otsl import otsl_to_html, parse_rows
from tests.vlm_server.conftest import chat
from vlm_server.recogniser import OcrRecogniser, Task


def spaced_accuracy(truth: str, got: str) -> float:
    """char_accuracy, but spaces count: whitespace runs become one space, and '_' stands for it."""
    return char_accuracy(" ".join(truth.split()).replace(" ", "_"), " ".join(got.split()).replace(" ", "_"))


def test_paragraphs_come_back_as_one_line_each_with_their_words_apart(
    client: openai.OpenAI, paragraph_crops: list[Crop]
) -> None:
    for crop in paragraph_crops:
        assert crop.image.shape[0] > 90, "a multi-line paragraph"
        got = chat(client, crop.jpeg, "OCR:")
        assert "\n" not in got
        assert char_accuracy(crop.truth, got) >= 0.97, got
        assert spaced_accuracy(crop.truth, got) >= 0.97, got


@pytest.mark.parametrize("text", [TITLE, HEADING, *PARAGRAPHS, CHINESE])
def test_single_lines_are_read(client: openai.OpenAI, sample_crops: dict[str, Crop], text: str) -> None:
    got = chat(client, sample_crops[text].jpeg, "OCR:")
    assert char_accuracy(text, got) >= 0.97, got
    if text.isascii():
        assert spaced_accuracy(text, got) >= 0.97, got
    else:
        assert " " not in got  # Chinese is written without spaces


def test_png_crops_are_read_like_jpeg(client: openai.OpenAI, sample_crops: dict[str, Crop]) -> None:
    buf = io.BytesIO()
    Image.fromarray(sample_crops[TITLE].image).save(buf, format="PNG")
    assert char_accuracy(TITLE, chat(client, buf.getvalue(), "OCR:", "image/png")) >= 0.97


def test_table_comes_back_as_otsl_with_its_rows_and_columns(
    client: openai.OpenAI, sample_crops: dict[str, Crop]
) -> None:
    got = chat(client, sample_crops["table"].jpeg, "Table Recognition:")
    assert re.fullmatch(r"(?:(?:<fcel>[^<]+|<ecel>)+<nl>)+", got), got
    rows = [[text for _, text in row] for row in parse_rows(got)]
    assert rows == TABLE
    html = otsl_to_html(got)  # the engine's own OTSL -> HTML path
    assert html.count("<tr>") == 3 and html.count("<td") == 9 and "<td>Recogniser</td>" in html


def test_an_empty_cell_is_an_ecel(client: openai.OpenAI) -> None:
    cells = [["Name", "Qty", "Note"], ["Apples", "3", ""], ["Pears", "", "ripe"]]
    doc = pymupdf.open()
    page = doc.new_page(width=400, height=200)
    for r, row in enumerate(cells):
        for c, text in enumerate(row):
            rect = pymupdf.Rect(20 + c * 120, 20 + r * 26, 140 + c * 120, 46 + r * 26)
            page.draw_rect(rect, color=(0, 0, 0), width=1)
            if text:
                page.insert_text((rect.x0 + 8, rect.y1 - 8), text, fontsize=11, fontname="helv")
    crop = next(c for c in block_crops(doc.tobytes()) if c.kind == "table")
    got = chat(client, crop.jpeg, "Table Recognition:")
    assert (
        got == "<fcel>Name<fcel>Qty<fcel>Note<nl><fcel>Apples<fcel>3<ecel><nl><fcel>Pears<ecel><fcel>ripe<nl>"
    )


def test_formula_is_its_printed_text_in_display_delimiters(
    client: openai.OpenAI, sample_crops: dict[str, Crop]
) -> None:
    got = chat(client, sample_crops[FORMULA].jpeg, "Formula Recognition:")
    assert got.startswith(r"\[") and got.endswith(r"\]")
    assert char_accuracy(FORMULA, got[2:-2]) >= 0.85, got


def test_chart_prompt_gives_the_printed_text_by_rows(
    client: openai.OpenAI, sample_crops: dict[str, Crop]
) -> None:
    got = chat(client, sample_crops["table"].jpeg, "Chart Recognition:")
    assert [line.split(" | ") for line in got.split("\n")] == TABLE


@pytest.mark.parametrize("prompt", ["Seal Recognition:", "Spotting:", "Describe this image."])
def test_other_prompts_give_the_text_lines(
    client: openai.OpenAI, sample_crops: dict[str, Crop], prompt: str
) -> None:
    got = chat(client, sample_crops[TITLE].jpeg, prompt)
    assert char_accuracy(TITLE, got) >= 0.97


def test_a_whole_page_keeps_paragraphs_apart(recogniser: OcrRecogniser, paragraph_crops: list[Crop]) -> None:
    """Layout detection off: the page is one block, and its paragraphs stay separate lines."""
    with pymupdf.open(stream=typical_page(), filetype="pdf") as doc:
        blocks = doc[0].get_text("dict")["blocks"][1:5]  # four paragraphs under the title
        clip = pymupdf.Rect()
        for block in blocks:
            clip |= block["bbox"]
        pix = doc[0].get_pixmap(matrix=pymupdf.Matrix(2, 2), clip=clip + (-20, -10, 20, 10), alpha=False)
        image = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width, 3)
    got = recogniser.recognise(image, Task.OCR).split("\n")
    assert len(got) == 4
    for line, truth in zip(got, [c.truth for c in paragraph_crops], strict=True):
        assert char_accuracy(truth, line) >= 0.97, line


def test_a_blank_image_reads_as_nothing(recogniser: OcrRecogniser) -> None:
    white = np.full((60, 400, 3), 255, np.uint8)
    assert recogniser.recognise(white, Task.OCR) == ""
    assert recogniser.recognise(white, Task.TABLE) == ""
    assert recogniser.recognise(white, Task.FORMULA) == ""
