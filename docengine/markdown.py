"""Blocks to Markdown: one small handler per layout label, outputs joined by blank lines.

Follows the upstream PaddleOCR-VL converter, so that clients diffing our Markdown against the reference
service see the same text. The same handlers give `block_content` when `formatBlockContent` is on.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from docengine.types import Block

DEFAULT_IGNORE_LABELS = [
    "number", "footnote", "header", "header_image", "footer", "footer_image", "aside_text"]
IMAGE_LABELS = ("image", "header_image", "footer_image", "seal")  # and chart, when chart recognition is off

_TABLE_STYLE = "border=1 style='margin: auto; word-wrap: break-word;'"
_CELL_STYLE = "style='text-align: center; word-wrap: break-word;'"

# A title's leading numbering: "1", "1.2.", "3、", "(2)", "（四）", "二、", "IV." ...
_NUMBERING = re.compile(
    r"^\s*((?:[1-9]\d*(?:\.\d+)*[.、]?|[(（](?:[1-9]\d*|[一二三四五六七八九十百千]+)[)）]"
    r"|[一二三四五六七八九十百千]+[、.]|(?:I|II|III|IV|V|VI|VII|VIII|IX|X)\.))(?:\s+|(?<=[.、)）])(?=[^\s\d]))(.*)$",
    re.S,
)


@dataclass(frozen=True)
class MarkdownStyle:
    """Switches that change how blocks render; `page_width` scales image widths to a percentage."""

    page_width: int
    prettify: bool = True
    use_ocr_for_image_block: bool = False
    use_seal_recognition: bool = False
    use_chart_recognition: bool = False


Handler = Callable[[Block, MarkdownStyle], str]


def image_labels(use_chart_recognition: bool) -> tuple[str, ...]:
    """Labels whose blocks are pictures (and carry an `imgs/...` crop) rather than recognised text."""
    return IMAGE_LABELS if use_chart_recognition else (*IMAGE_LABELS, "chart")


def image_path(label: str, bbox: Sequence[float]) -> str:
    """The relative path upstream gives an image block's crop."""
    x1, y1, x2, y2 = (int(v) for v in bbox)
    return f"imgs/img_in_{label}_box_{x1}_{y1}_{x2}_{y2}.jpg"


# --- small formatting helpers ------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return text.replace("-\n", "").replace("\n", " ")


def _centered(text: str) -> str:
    return f'<div style="text-align: center;">{_one_line(text)}</div>\n'


def _paragraphs(block: Block, _: MarkdownStyle) -> str:
    """Every line break becomes a paragraph break (blank lines first collapse so they do not double)."""
    return block.content.replace("\n\n", "\n").replace("\n", "\n\n")


def _plain(block: Block, _: MarkdownStyle) -> str:
    return block.content


def _doc_title(block: Block, _: MarkdownStyle) -> str:
    return _one_line(f"# {block.content}")


def title_level(block: Block) -> tuple[int, str]:
    """A paragraph title's level and text: the relevelled `title_level` when set, otherwise dots in the
    numbering + 1 ("1.2 Methods" is level 2), the numbering then kept apart from the text by one space."""
    level = block.extra.get("title_level")
    title = block.content
    if level is None:
        match = _NUMBERING.match(title)
        level = 1
        if match:
            numbering = match.group(1).strip()
            title = f"{numbering} {match.group(2).lstrip()}"
            level = numbering.rstrip(".、").count(".") + 1
        title = title.rstrip(".")
    return int(level), title


def _paragraph_title(block: Block, _: MarkdownStyle) -> str:
    """`#` x (level + 1)."""
    level, title = title_level(block)
    return _one_line(f"{'#' * (level + 1)} {title}")


def _caption(block: Block, style: MarkdownStyle) -> str:
    return _centered(block.content) if style.prettify else block.content


def _content(block: Block, _: MarkdownStyle) -> str:
    """Table-of-contents lines keep their breaks as Markdown hard breaks."""
    return block.content.replace("\n", "  \n")


def _heading_first(words: tuple[str, ...], separator: str, suffix: str) -> Handler:
    """A first line (or word) that is just the section name, e.g. "Abstract", becomes a `##` heading."""

    def handle(block: Block, _: MarkdownStyle) -> str:
        lines = block.content.split("\n")
        for i, line in enumerate(lines):
            if line.strip():
                if line.strip().lower() in words:
                    lines[i] = f"## {line.strip()}"
                    return "\n".join(lines)
                break
        parts = block.content.split(separator)
        for i, part in enumerate(parts):
            if part.strip():
                if part.strip().lower() in words:
                    parts[i] = f"## {part.strip()}{suffix}"
                break
        return separator.join(parts)

    return handle


def _algorithm(block: Block, _: MarkdownStyle) -> str:
    return block.content.strip("\n")


def _table(block: Block, style: MarkdownStyle) -> str:
    """Pretty: bordered and centred; plain: the bare table. Both start on a new line, as upstream."""
    content = block.content
    if not style.prettify:
        for tag in ("<html>", "</html>", "<body>", "</body>"):
            content = content.replace(tag, "")
        return "\n" + content
    content = re.sub(r"<table(?=[\s>])(?![^>]*\bborder=)", f"<table {_TABLE_STYLE}", content, count=1)
    content = re.sub(r"<(td|th)(?=[\s>])(?![^>]*\bstyle=)", rf"<\1 {_CELL_STYLE}", content)
    return "\n" + content


def _picture(block: Block, style: MarkdownStyle, show_text: bool) -> str:
    if not block.image_path:
        return ""
    if style.prettify:
        x1, _, x2, _ = block.bbox
        percent = int((x2 - x1) / max(style.page_width, 1) * 100)
        out = _centered(f'<img src="{block.image_path}" alt="Image" width="{percent}%" />')
    else:
        out = f"![]({block.image_path})"
    if show_text and block.content.strip():
        out += f"\n\n{block.content}"
    return out


def _image(block: Block, style: MarkdownStyle) -> str:
    return _picture(block, style, style.use_ocr_for_image_block)


def _seal(block: Block, style: MarkdownStyle) -> str:
    return _picture(block, style, style.use_seal_recognition)


def _chart(block: Block, style: MarkdownStyle) -> str:
    """With chart recognition the VLM writes pipe-separated rows (header first); they become an HTML table."""
    if not style.use_chart_recognition:
        return _picture(block, style, False)
    lines = [line for line in block.content.strip().split("\n") if line.strip()]
    if not lines:
        return ""

    def cells(line: str, tag: str) -> str:
        parts = line.strip().strip("|").split("|")
        return "".join(f"<{tag} style='text-align: center;'>{html.escape(p.strip())}</{tag}>" for p in parts)

    body = "".join(f"    <tr>{cells(line, 'td')}</tr>\n" for line in lines[1:])
    return (
        "<table border=1 style='margin: auto; width: max-content;'>\n"
        f"  <thead><tr>{cells(lines[0], 'th')}</tr></thead>\n"
        f"  <tbody>\n{body}  </tbody>\n</table>"
    )


HANDLERS: dict[str, Handler] = {
    "doc_title": _doc_title,
    "paragraph_title": _paragraph_title,
    "abstract_title": _paragraph_title,
    "reference_title": _paragraph_title,
    "content_title": _paragraph_title,
    "text": _paragraphs,
    "ocr": _paragraphs,
    "vertical_text": _paragraphs,
    "reference_content": _paragraphs,
    "vision_footnote": _paragraphs,
    "figure_title": _caption,
    "table_title": _caption,
    "chart_title": _caption,
    "content": _content,
    "abstract": _heading_first(("abstract", "摘要"), " ", "\n"),
    "reference": _heading_first(("references", "参考文献"), "\n", ""),
    "algorithm": _algorithm,
    "formula": _plain,
    "display_formula": _plain,
    "inline_formula": _plain,
    "table": _table,
    "image": _image,
    "header_image": _image,
    "footer_image": _image,
    "seal": _seal,
    "chart": _chart,
    "spotting": _plain,
    "number": _plain,
    "footnote": _plain,
    "header": _plain,
    "footer": _plain,
    "aside_text": _plain,
}  # formula_number has no handler: it only ever shows as a formula's \tag*{}


def _with_number(formula: str, number: str) -> str:
    return f"$${formula.replace('$$', '').strip()} \\tag*{{{number.strip()}}}$$"


def markdown_text(
    blocks: list[Block],
    *,
    style: MarkdownStyle,
    show_formula_number: bool = False,
    ignore_labels: Collection[str] = (),
) -> str:
    """Blocks in reading order as Markdown; `ignore_labels` (and labels without handler) are left out."""
    parts: list[str] = []
    for i, block in enumerate(blocks):
        handler = HANDLERS.get(block.label)
        if handler is None or block.label in ignore_labels:
            continue
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if show_formula_number and block.label in ("display_formula", "formula") and nxt is not None \
                and nxt.label == "formula_number":
            out = _with_number(block.content, nxt.content)
        else:
            out = handler(block, style)
        if out.strip():
            parts.append(out)
    return "\n\n".join(parts)


def block_images(blocks: list[Block]) -> dict[str, np.ndarray]:
    """Crops of the blocks that carry one, by their `imgs/...` path (ignored labels included, as upstream)."""
    return {b.image_path: b.image for b in blocks if b.image_path and b.image is not None}


def render_markdown(
    blocks: list[Block],
    *,
    page_width: int,
    prettify: bool,
    show_formula_number: bool,
    ignore_labels: Collection[str],
    use_ocr_for_image_block: bool = False,
    use_seal_recognition: bool = False,
    use_chart_recognition: bool = False,
) -> tuple[str, dict[str, np.ndarray]]:
    """A page's Markdown text and the images it refers to (path -> RGB crop)."""
    style = MarkdownStyle(page_width, prettify, use_ocr_for_image_block, use_seal_recognition,
                          use_chart_recognition)
    text = markdown_text(blocks, style=style, show_formula_number=show_formula_number,
                         ignore_labels=ignore_labels)
    return text, block_images(blocks)


def format_block_content(block: Block, *, page_width: int, use_chart_recognition: bool = False) -> str:
    """`block_content` under `formatBlockContent`: the block's own pretty Markdown, images without OCR."""
    handler = HANDLERS.get(block.label)
    if handler is None:
        return block.content
    return handler(block, MarkdownStyle(page_width, True, use_chart_recognition=use_chart_recognition))
