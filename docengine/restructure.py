"""Document-level clean-up over finished pages: `/restructure-pages`, and `restructurePages` of a request.

The work is on blocks (`restructure_blocks`): they are numbered across the document, tables split over a
page break are merged, and paragraph titles get document-wide levels. A request's own pages come as blocks,
and are assembled once afterwards. `/restructure-pages` gets pages as their `prunedResult` plus Markdown
images, so its blocks are rebuilt from `parsing_res_list` first and the JSON and Markdown written again;
images are Base64 already and pass through untouched.
"""

from __future__ import annotations

import copy
import html
import re
from typing import Any

from contract.envelope import markdown_json
from docengine.assemble import reading_orders
from docengine.docx_export import DocxPage, decode_images, docx_exports
from docengine.errors import InvalidInputError
from docengine.markdown import (
    DEFAULT_IGNORE_LABELS,
    MarkdownStyle,
    format_block_content,
    image_labels,
    image_path,
    markdown_text,
)
from docengine.titles import relevel_paragraph_titles
from docengine.types import Block

PageJson = tuple[dict[str, Any], dict[str, str] | None]   # a page's prunedResult and markdown.images

_LEADING_HASHES = re.compile(r"^#+\s+")
_CENTERED = re.compile(r'^<div style="text-align: center;">(.*)</div>\n?$', re.S)


# --- rebuilding blocks from JSON ---------------------------------------------------------------------------


def _settings(pruned: dict[str, Any]) -> dict[str, Any]:
    settings = pruned.get("model_settings")
    return settings if isinstance(settings, dict) else {}


def _unformatted(content: str) -> str:
    """Content without the Markdown dressing `formatBlockContent` may have added, so it is not applied twice:
    a title's `#… `, a caption's centring `<div>`, the newline before a table."""
    content = _LEADING_HASHES.sub("", content, count=1)
    centered = _CENTERED.match(content)
    if centered:
        content = centered.group(1)
    return content.lstrip("\n") if content.lstrip("\n").startswith("<table") else content


def rebuild_page(pruned: dict[str, Any], page_no: int) -> list[Block]:
    """One page's blocks: contents lose a Markdown `#… ` prefix, image blocks regain their `imgs/...` path."""
    entries = pruned.get("parsing_res_list")
    if not isinstance(entries, list):
        raise InvalidInputError(f"pages[{page_no}].prunedResult has no parsing_res_list")
    pictures = image_labels(bool(_settings(pruned).get("use_chart_recognition", False)))
    blocks = []
    for i, entry in enumerate(entries):
        try:
            label = str(entry["block_label"])
            bbox = [int(round(float(v))) for v in entry["block_bbox"]]
            if len(bbox) != 4:
                raise ValueError("block_bbox needs 4 numbers")
            group_id = i if entry.get("group_id") is None else int(entry["group_id"])
        except (KeyError, TypeError, ValueError) as exc:
            where = f"pages[{page_no}].prunedResult.parsing_res_list[{i}]"
            raise InvalidInputError(f"{where} is malformed: {exc}") from exc
        blocks.append(Block(
            label=label,
            bbox=bbox,
            content=_unformatted(str(entry.get("block_content") or "")),
            group_id=group_id,
            polygon_points=entry.get("block_polygon_points"),
            image_path=image_path(label, bbox) if label in pictures else None,
        ))
    return blocks


# --- cross-page table merging -------------------------------------------------------------------------------

_ROW = re.compile(r"<tr\b[^>]*>.*?</tr\s*>", re.S | re.I)
_CELL = re.compile(r"<t([dh])\b([^>]*)>(.*?)</t\1\s*>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_CONTINUED = ("continue", "cont'd", "cont‘d", "cont’d", "续", "續")
_AFTER_PREV_TABLE = {"footer", "vision_footnote", "number", "footnote", "footer_image", "seal"}
_BEFORE_CURR_TABLE = {"header", "header_image", "number", "seal"}
_MAX_HEADER_ROWS = 5
_MAX_SPAN = 1000  # bounds the grid a hostile colspan/rowspan could ask for


def _span(attrs: str, name: str) -> int:
    match = re.search(rf"{name}\s*=\s*[\"']?(\d+)", attrs, re.I)
    return min(max(1, int(match.group(1))), _MAX_SPAN) if match else 1


def _cells(row: str) -> list[tuple[str, int, int]]:
    """(normalised text, colspan, rowspan) of each cell; text ignores whitespace and full-width forms."""
    out = []
    for _, attrs, inner in _CELL.findall(row):
        text = html.unescape(_TAG.sub("", inner))
        text = "".join(chr(ord(c) - 0xFEE0) if 0xFF01 <= ord(c) <= 0xFF5E else c for c in text)
        out.append(("".join(text.split()), _span(attrs, "colspan"), _span(attrs, "rowspan")))
    return out


def _total_columns(rows: list[str]) -> int:
    """Width of the table grid, placing row- and column-spanning cells."""
    occupied: dict[int, set[int]] = {}
    width = 0
    for r, row in enumerate(rows):
        col = 0
        for _, colspan, rowspan in _cells(row):
            while col in occupied.get(r, set()):
                col += 1
            for rr in range(r, min(r + rowspan, len(rows))):
                occupied.setdefault(rr, set()).update(range(col, col + colspan))
            col += colspan
            width = max(width, col)
    return width


def _header_rows(prev: list[str], curr: list[str]) -> int:
    """How many leading rows (at most 5) the continuation repeats from the first table."""
    count = 0
    for a, b in zip(prev[:_MAX_HEADER_ROWS], curr[:_MAX_HEADER_ROWS], strict=False):
        ca, cb = _cells(a), _cells(b)
        if len(ca) != len(cb) or any(x[:2] != y[:2] for x, y in zip(ca, cb, strict=True)):
            break
        count += 1
    return count


def _columns_agree(prev: list[str], curr: list[str]) -> bool:
    if _total_columns(prev) == _total_columns(curr):
        return True
    skip = _header_rows(prev, curr)
    if skip >= len(curr):
        return False
    last, first = _cells(prev[-1]), _cells(curr[skip])
    return sum(c[1] for c in last) == sum(c[1] for c in first) or len(last) == len(first)


def _continues(prev_page: list[Block], p: int, curr_page: list[Block], c: int) -> bool:
    """The four upstream conditions for table `c` (top of a page) continuing `p` (end of the page before)."""
    prev, curr = prev_page[p], curr_page[c]
    pw, cw = prev.bbox[2] - prev.bbox[0], curr.bbox[2] - curr.bbox[0]
    if pw <= 0 or cw <= 0 or abs(pw - cw) / min(pw, cw) >= 0.1:
        return False
    if any(b.label not in _AFTER_PREV_TABLE for b in prev_page[p + 1:]):
        return False
    if any(b.label not in _BEFORE_CURR_TABLE and not any(k in b.content.lower() for k in _CONTINUED)
           for b in curr_page[:c]):
        return False
    prev_rows, curr_rows = _ROW.findall(prev.content), _ROW.findall(curr.content)
    return bool(prev_rows and curr_rows) and _columns_agree(prev_rows, curr_rows)


def _append_rows(prev_html: str, curr_html: str) -> str:
    """The first table with the second's rows after its last row, minus the header rows the second repeats."""
    prev_rows = list(_ROW.finditer(prev_html))
    curr_rows = _ROW.findall(curr_html)
    extra = "".join(curr_rows[_header_rows([m.group(0) for m in prev_rows], curr_rows):])
    end = prev_rows[-1].end()
    return prev_html[:end] + extra + prev_html[end:]


def merge_tables_across_pages(pages: list[list[Block]]) -> None:
    """Fold a page's first table into the previous page's last one when it continues it (in place).

    Walks from the last page back, so a table spanning several pages collects all its rows in the first part.
    The continuation keeps an empty content and its `global_group_id` names the table it joined.
    """
    for i in range(len(pages) - 1, 0, -1):
        tables_before = [n for n, b in enumerate(pages[i - 1]) if b.label == "table"]
        tables_here = [n for n, b in enumerate(pages[i]) if b.label == "table"]
        if not tables_before or not tables_here:
            continue
        p, c = tables_before[-1], tables_here[0]
        if not _continues(pages[i - 1], p, pages[i], c):
            continue
        prev, curr = pages[i - 1][p], pages[i][c]
        prev.content = _append_rows(prev.content, curr.content)
        curr.content = ""
        curr.extra["global_group_id"] = prev.extra["global_block_id"]
    by_id = {b.extra["global_block_id"]: b for page in pages for b in page}
    for block in by_id.values():  # in id order, so a host's own group is already final
        block.extra["global_group_id"] = by_id[block.extra["global_group_id"]].extra["global_group_id"]


# --- output -------------------------------------------------------------------------------------------------


def _page_width(pruned: dict[str, Any], blocks: list[Block]) -> int:
    width = pruned.get("width")
    if isinstance(width, (int, float)) and width > 0:
        return int(width)
    return max((b.bbox[2] for b in blocks), default=1)


def _ignore_labels(pruned: dict[str, Any]) -> list[str]:
    ignore = _settings(pruned).get("markdown_ignore_labels")
    return list(DEFAULT_IGNORE_LABELS if ignore is None else ignore)


def _parsing_res(blocks: list[Block], pruned: dict[str, Any], widths: list[int]) -> list[dict[str, Any]]:
    """`parsing_res_list` with the global ids, as PaddleX writes it from its blocks: `block_id` and
    `block_order` count down this list (a whole document when concatenated), `group_id` is the block's own
    (page-local) one, `global_group_id` the document-wide one. `widths[i]` is block i's page width."""
    settings = _settings(pruned)
    formatted = bool(settings.get("format_block_content", False))
    chart = bool(settings.get("use_chart_recognition", False))
    orders = reading_orders([b.label for b in blocks], _ignore_labels(pruned))
    out = []
    for i, (b, width, order) in enumerate(zip(blocks, widths, orders, strict=True)):
        content = b.content
        if formatted:
            content = format_block_content(b, page_width=width, use_chart_recognition=chart)
        entry: dict[str, Any] = {
            "block_label": b.label,
            "block_content": content,
            "block_bbox": list(b.bbox),
            "block_id": i,
            "block_order": order,
            "group_id": i if b.group_id is None else b.group_id,
        }
        if b.polygon_points is not None:
            entry["block_polygon_points"] = b.polygon_points
        entry["global_block_id"] = b.extra["global_block_id"]
        entry["global_group_id"] = b.extra["global_group_id"]
        out.append(entry)
    return out


def _pruned_result(source: dict[str, Any], parsing: list[dict[str, Any]], **results: Any) -> dict[str, Any]:
    """A `prunedResult` with only the keys PaddleX writes, in its order. `results` are the per-page results
    (`spotting_res`, `doc_preprocessor_res`, `layout_det_res`, `page_count`) to use instead of `source`'s."""
    settings = _settings(source)
    found = {**source, **results}
    out: dict[str, Any] = {
        "page_count": found.get("page_count"),
        "width": source.get("width"),
        "height": source.get("height"),
        "model_settings": source.get("model_settings", {}),
        "parsing_res_list": parsing,
    }
    if found.get("spotting_res"):
        out["spotting_res"] = found["spotting_res"]
    if settings.get("use_doc_preprocessor") and "doc_preprocessor_res" in found:
        out["doc_preprocessor_res"] = found["doc_preprocessor_res"]
    if settings.get("use_layout_detection", True) and "layout_det_res" in found:
        out["layout_det_res"] = found["layout_det_res"]
    return out


def _markdown(blocks: list[Block], pruned: dict[str, Any], width: int, prettify: bool,
              show_formula_number: bool) -> str:
    settings = _settings(pruned)
    style = MarkdownStyle(
        page_width=width,
        prettify=prettify,
        use_ocr_for_image_block=bool(settings.get("use_ocr_for_image_block", False)),
        use_seal_recognition=bool(settings.get("use_seal_recognition", False)),
        use_chart_recognition=bool(settings.get("use_chart_recognition", False)),
    )
    return markdown_text(blocks, style=style, show_formula_number=show_formula_number,
                         ignore_labels=set(_ignore_labels(pruned)))


def restructure_blocks(pages: list[list[Block]], *, merge_tables: bool, relevel_titles: bool) -> None:
    """Number every block across the document, merge continued tables and relevel titles (in place)."""
    running = 0
    for page in pages:
        for block in page:
            block.extra["global_block_id"] = block.extra["global_group_id"] = running
            running += 1
    if merge_tables:
        merge_tables_across_pages(pages)
    if relevel_titles:
        relevel_paragraph_titles([b for page in pages for b in page if b.label == "paragraph_title"])


def restructure_pages(
    pages: list[PageJson],
    *,
    merge_tables: bool = True,
    relevel_titles: bool = True,
    concatenate_pages: bool = False,
    prettify: bool = True,
    show_formula_number: bool = False,
    return_markdown_images: bool = True,
    output_formats: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """`{prunedResult, markdown: {text, images}[, exports]}` per page, or one for the whole document when
    concatenating.

    Each input is a page's `(prunedResult, markdown images)`; the inputs are not modified. A docx takes its
    pictures from the markdown images (Base64; anything else, a URL say, is left out rather than fetched).
    """
    pruned_list = [copy.deepcopy(p) for p, _ in pages]
    blocks = [rebuild_page(p, i) for i, p in enumerate(pruned_list)]
    restructure_blocks(blocks, merge_tables=merge_tables, relevel_titles=relevel_titles)

    widths = [_page_width(p, b) for p, b in zip(pruned_list, blocks, strict=True)]
    texts = [_markdown(b, p, w, prettify, show_formula_number)
             for b, p, w in zip(blocks, pruned_list, widths, strict=True)]

    docx = "docx" in output_formats
    if not concatenate_pages:
        results = []
        for i, (p, b, w, text, (_, images)) in enumerate(
                zip(pruned_list, blocks, widths, texts, pages, strict=True)):
            result = {"prunedResult": _pruned_result(p, _parsing_res(b, p, [w] * len(b))),
                      "markdown": markdown_json(text, _passed_on(images, return_markdown_images))}
            if docx:
                result["exports"] = docx_exports([_docx_page(p, b, w, images)], f"page_{i}.docx")
            results.append(result)
        return results

    # One document, as PaddleX builds it from its first page: that page's size, settings and spotting result,
    # every page's blocks, and the per-page results as lists.
    first = pruned_list[0]
    parsing = _parsing_res([b for page in blocks for b in page], first,
                           [w for page, w in zip(blocks, widths, strict=True) for _ in page])
    union: dict[str, str] = {}
    for _, images in pages:
        union.update(images or {})
    pruned = _pruned_result(first, parsing, page_count=len(pages),
                            doc_preprocessor_res=[p.get("doc_preprocessor_res") for p in pruned_list],
                            layout_det_res=[p.get("layout_det_res") for p in pruned_list])
    text = "\n\n".join(t for t in texts if t)
    markdown = markdown_json(text, _passed_on(union, return_markdown_images))
    result = {"prunedResult": pruned, "markdown": markdown}
    if docx:
        parts = [_docx_page(p, b, w, union) for p, b, w in zip(pruned_list, blocks, widths, strict=True)]
        result["exports"] = docx_exports(parts, "document.docx")
    return [result]


def _docx_page(pruned: dict[str, Any], blocks: list[Block], width: int,
               images: dict[str, str] | None) -> DocxPage:
    settings = _settings(pruned)
    return DocxPage(blocks, width, decode_images(images), _ignore_labels(pruned),
                    use_chart_recognition=bool(settings.get("use_chart_recognition", False)),
                    use_seal_recognition=bool(settings.get("use_seal_recognition", False)),
                    use_ocr_for_image_block=bool(settings.get("use_ocr_for_image_block", False)))


def _passed_on(images: dict[str, str] | None, wanted: bool) -> dict[str, str] | None:
    return dict(images) if wanted and images is not None else None

