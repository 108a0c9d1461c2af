"""The text-layer reader on real PDFs made with pymupdf: glyph boxes where the rendered page has the glyphs,
and the flags that decide whether to believe them."""

from __future__ import annotations

import pymupdf
import pytest

from devkit.documents import REPORT_CHINESE, encode_image, render_page, report_page
from docengine.inputs import decode_document, read_page
from docengine.textlayer import TextLayer, is_unmapped, read_layer
from tests.engine.conftest import make_settings

SETTINGS = make_settings()


async def layer_and_page(pdf: bytes, file_type: int = 0) -> tuple[TextLayer | None, object]:
    doc = decode_document(pdf, file_type, SETTINGS)
    try:
        return await read_layer(doc, 0), await read_page(doc, 0)
    finally:
        doc.close()


def one_line(text: str, *, rotate_page: int = 0, **insert: object) -> bytes:
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_text((100, 200), text, fontsize=20, **insert)  # type: ignore[arg-type]
    page.set_rotation(rotate_page)
    data = doc.tobytes()
    doc.close()
    return data


@pytest.mark.parametrize("rotation", [0, 90])
async def test_glyph_boxes_lie_on_the_glyphs_of_the_rendered_page(rotation: int) -> None:
    layer, page = await layer_and_page(one_line("Harbour", rotate_page=rotation))
    assert layer is not None and "".join(c.text for c in layer.chars) == "Harbour"
    for char in layer.chars:
        x1, y1, x2, y2 = (int(round(v)) for v in char.box)
        assert page[y1:y2, x1:x2].min() < 100           # ink under every box  # type: ignore[index]
        assert char.upright == (rotation == 0)       # a page turned a quarter shows its text turned
        assert not char.invisible and not char.unmapped
    if rotation == 0:
        first = layer.chars[0].box
        assert first[0] == pytest.approx(200, abs=2) and first[1] < 400 < first[3]   # (100, 200) pt at 2x


async def test_invisible_text_and_turned_text_are_flagged() -> None:
    invisible, _ = await layer_and_page(one_line("hidden", render_mode=3))
    assert invisible is not None and all(c.invisible for c in invisible.chars)
    turned, _ = await layer_and_page(one_line("turned", rotate=90))
    assert turned is not None and not any(c.upright for c in turned.chars)


async def test_glyphs_without_a_unicode_map_are_flagged() -> None:
    mapped, _ = await layer_and_page(report_page().pdf)
    stripped, _ = await layer_and_page(report_page(strip_cjk_unicode=True).pdf)
    assert mapped is not None and stripped is not None
    assert REPORT_CHINESE[:6] in "".join(c.text for c in mapped.chars)
    assert not any(c.unmapped for c in mapped.chars)
    assert sum(c.unmapped for c in stripped.chars) >= len(REPORT_CHINESE) * 3 // 4


async def test_an_image_has_no_layer_and_a_scan_an_empty_one() -> None:
    picture = encode_image(render_page(one_line("scan"), dpi=72))
    assert (await layer_and_page(picture, 1))[0] is None
    doc = pymupdf.open()
    doc.new_page(width=595, height=842).insert_image(pymupdf.Rect(0, 0, 595, 842), stream=picture)
    scan = doc.tobytes()
    doc.close()
    layer, _ = await layer_and_page(scan)
    assert layer is not None and layer.chars == []


def test_codes_that_carry_no_character() -> None:
    assert all(is_unmapped(code) for code in (0, 0x01, 0xE000, 0xF8FF, 0xFFFD, 0xF0001))
    assert not any(is_unmapped(code) for code in (ord("a"), ord("文"), 0x1D700))
