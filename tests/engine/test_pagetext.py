"""No text left behind, and text blocks from the PDF's own layer: the engine on the report page of
`devkit.documents`, with a layout stand-in that misses its paragraphs and cuts its footer (as PP-PicoDet did)
or covers it all, and the real CPU recogniser.

Every word must come back, none twice, whether the text comes from the layer or the recogniser, from a PDF or
from its image; where layout covers everything nothing changes and no recognition is added; each reason not
to believe the layer falls back to the recogniser.
"""

from __future__ import annotations

from collections import Counter

import pymupdf
import pytest

from devkit.documents import (
    REPORT_ENGLISH,
    REPORT_FOOTER,
    ReportPage,
    encode_image,
    render_page,
    report_page,
    words_of,
)
from docengine import pagetext
from docengine.blocks import prepare_page
from tests.engine.text_stand_ins import answer_words, blocks, parse, settings

REPORT = report_page()
FOOTER_WIDTH = pymupdf.get_text_length(REPORT_FOOTER, "helv", 9)
PARTS = REPORT.parts
# What PP-PicoDet gave: the title and the table, and a footer box cutting its first word and last character.
MISSED = [("paragraph_title", PARTS["title"]), ("table", PARTS["table"]),
          ("footer", (68.0, 802.0, 60 + FOOTER_WIDTH - 4, 815.0))]
COVERED = [("paragraph_title", PARTS["title"]), ("text", PARTS["english"]), ("text", PARTS["chinese"]),
           ("table", PARTS["table"]), ("footer", (56.0, 802.0, 64 + FOOTER_WIDTH, 815.0))]


def png(page: ReportPage) -> bytes:
    return encode_image(render_page(page.pdf, dpi=144))


@pytest.mark.parametrize("source", ["auto", "vlm"])
async def test_text_the_layout_missed_comes_back_once_from_a_pdf(source: str) -> None:
    answer, calls = await parse(REPORT.pdf, MISSED, textSource=source)
    assert answer_words(answer) == Counter(REPORT.words())
    recovered = [b for b in blocks(answer) if b.get("block_recovered")]
    assert recovered and all(b["block_label"] == "text" for b in recovered)
    assert answer["dataInfo"]["recoveredBlocks"] == len(recovered)
    footer = [b["block_content"] for b in blocks(answer) if b["block_label"] == "footer"]
    assert footer == [REPORT_FOOTER]
    # auto: only the table is recognised; vlm: every block is
    assert calls == (1 if source == "auto" else answer["dataInfo"]["blockSources"]["vlm"])


async def test_text_the_layout_missed_comes_back_once_from_an_image() -> None:
    answer, _ = await parse(png(REPORT), MISSED, file_type=1)
    assert answer_words(answer) == Counter(REPORT.words())
    assert answer["dataInfo"]["recoveredBlocks"] >= 1
    assert "blockSources" in answer["dataInfo"] and answer["dataInfo"]["blockSources"]["pdf"] == 0


@pytest.mark.parametrize("kind", ["pdf", "png"])
async def test_a_page_layout_covers_is_answered_as_without_recovery_at_the_same_cost(kind: str) -> None:
    file, file_type = (REPORT.pdf, 0) if kind == "pdf" else (png(REPORT), 1)
    with_recovery = await parse(file, COVERED, file_type=file_type, textSource="vlm")
    without = await parse(file, COVERED, file_type=file_type, textSource="vlm", recoverText=False)
    assert with_recovery == without
    assert with_recovery[1] == 5
    assert answer_words(with_recovery[0]) == Counter(REPORT.words())


async def test_text_source_vlm_gives_the_answer_of_the_engine_without_the_text_layer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    answer = await parse(REPORT.pdf, COVERED, textSource="vlm", recoverText=False)

    async def no_layer(*args: object) -> None:
        return None

    def layout_boxes_only(page, boxes, layer, options, lines):  # type: ignore[no-untyped-def]
        return prepare_page(page, boxes, options.recognition)

    monkeypatch.setattr(pagetext, "read_layer", no_layer)
    monkeypatch.setattr(pagetext, "prepare", layout_boxes_only)
    assert answer == await parse(REPORT.pdf, COVERED, textSource="vlm", recoverText=False)


async def test_auto_takes_text_blocks_from_the_layer_and_counts_the_sources() -> None:
    answer, calls = await parse(REPORT.pdf, COVERED, textSource="auto")
    assert calls == 1
    assert answer["dataInfo"]["blockSources"] == {"pdf": 4, "vlm": 1}
    assert "recoveredBlocks" not in answer["dataInfo"]
    by_label = {b["block_label"]: b for b in blocks(answer)}
    assert by_label["table"].get("block_text_source") is None
    assert by_label["footer"]["block_text_source"] == "pdf"
    texts = [b["block_content"] for b in blocks(answer) if b["block_label"] == "text"]
    assert texts[0] == REPORT_ENGLISH
    assert answer_words(answer) == Counter(REPORT.words())


async def test_glyphs_without_unicode_are_recognised() -> None:
    page = report_page(english_font="cjk", strip_cjk_unicode=True)
    answer, calls = await parse(page.pdf, COVERED, textSource="auto")
    sources = [(b["block_label"], b.get("block_text_source")) for b in blocks(answer)]
    assert sources == [("paragraph_title", "pdf"), ("text", None), ("text", None), ("table", None),
                       ("footer", "pdf")]
    assert calls == 3
    assert Counter(words_of(REPORT_ENGLISH)) <= answer_words(answer)


def scanned(invisible_text: str | None = None) -> bytes:
    """The report page as a picture in a PDF, with an invisible text layer over its English paragraph."""
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_image(page.rect, stream=png(REPORT))
    if invisible_text is not None:
        page.insert_textbox(pymupdf.Rect(PARTS["english"]), invisible_text, fontsize=11, render_mode=3)
    data = doc.tobytes()
    doc.close()
    return data


# An OCR layer that lies where the words are but read them wrong.
WRONG = REPORT_ENGLISH.replace("rose", "fell").replace("opened", "closed")


@pytest.mark.parametrize("trusted", [False, True])
async def test_an_invisible_ocr_layer_is_believed_only_when_a_setting_says_so(trusted: bool) -> None:
    answer, _ = await parse(scanned(WRONG), COVERED, textSource="auto",
                            engine_settings=settings(trust_invisible_text=trusted))
    english = [b for b in blocks(answer) if b["block_label"] == "text"][0]
    if trusted:
        assert english["block_text_source"] == "pdf" and english["block_content"] == WRONG
    else:
        assert "block_text_source" not in english and "rose by eleven" in english["block_content"]


async def test_a_scanned_page_is_recognised_and_its_missed_text_recovered() -> None:
    answer, calls = await parse(scanned(), MISSED, textSource="auto")
    assert all("block_text_source" not in b for b in blocks(answer))
    assert calls == len(blocks(answer))
    assert answer_words(answer) == Counter(REPORT.words())


def mixed(kind: str) -> bytes:
    """A text block whose layer covers only part of its ink (`picture`: half of it is an image of text),
    or whose text is turned a quarter (`rotated`)."""
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    if kind == "picture":
        page.insert_textbox(pymupdf.Rect(60, 120, 535, 145), "Cargo volumes through the harbour rose.",
                            fontsize=11)
        picture = render_page(REPORT.pdf, dpi=144)[236:340, 116:1074]
        page.insert_image(pymupdf.Rect(60, 150, 535, 202), stream=encode_image(picture))
    else:
        page.insert_textbox(pymupdf.Rect(60, 120, 90, 600), "Cargo volumes through the harbour rose.",
                            fontsize=11, rotate=90)
    data = doc.tobytes()
    doc.close()
    return data


@pytest.mark.parametrize("kind", ["picture", "rotated"])
async def test_text_covering_part_of_the_ink_or_turned_is_recognised(kind: str) -> None:
    box = (56.0, 116.0, 540.0, 206.0) if kind == "picture" else (56.0, 116.0, 94.0, 604.0)
    answer, calls = await parse(mixed(kind), [("text", box)], textSource="auto", recoverText=False)
    assert calls == 1
    assert "block_text_source" not in blocks(answer)[0]
    assert "blockSources" not in answer["dataInfo"]


def framed() -> bytes:
    """A heading in white on a black banner, and a paragraph in a ruled frame: text whose block holds ink
    that no glyph draws, all of it rules and fills."""
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.draw_rect(pymupdf.Rect(40, 60, 555, 110), color=(0, 0, 0), fill=(0, 0, 0))
    page.insert_textbox(pymupdf.Rect(60, 70, 535, 108), "Port Authority Annual Review", fontsize=18,
                        color=(1, 1, 1))
    page.draw_rect(pymupdf.Rect(52, 140, 543, 230), color=(0, 0, 0), width=1.5)
    page.insert_textbox(pymupdf.Rect(60, 150, 535, 220), REPORT_ENGLISH, fontsize=11)
    page.draw_line(pymupdf.Point(60, 200), pymupdf.Point(535, 200), color=(0, 0, 0), width=1)
    data = doc.tobytes()
    doc.close()
    return data


async def test_rules_and_a_banner_around_the_text_do_not_send_it_to_the_recogniser() -> None:
    regions = [("doc_title", (40.0, 60.0, 555.0, 110.0)), ("text", (50.0, 138.0, 545.0, 232.0))]
    answer, calls = await parse(framed(), regions, textSource="auto", recoverText=False)
    assert calls == 0
    assert [b["block_text_source"] for b in blocks(answer)] == ["pdf", "pdf"]
    assert blocks(answer)[0]["block_content"] == "Port Authority Annual Review"
    assert answer_words(answer) == Counter(words_of("Port Authority Annual Review " + REPORT_ENGLISH))


# The English paragraph boxed as a picture, as PicoDet boxed a table of contents and a reference card.
PICTURED = [("paragraph_title", PARTS["title"]), ("image", PARTS["english"]), ("text", PARTS["chinese"]),
            ("table", PARTS["table"]), ("footer", (56.0, 802.0, 64 + FOOTER_WIDTH, 815.0))]


async def test_a_picture_of_nothing_but_text_is_read_as_text_from_an_image_too() -> None:
    answer, _ = await parse(png(REPORT), PICTURED, file_type=1)
    assert answer_words(answer) == Counter(REPORT.words())
    assert [b["block_label"] for b in blocks(answer)].count("image") == 0
    without, _ = await parse(png(REPORT), PICTURED, file_type=1, recoverText=False)
    assert not Counter(words_of(REPORT_ENGLISH)) <= answer_words(without)
