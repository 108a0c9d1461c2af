r"""Clean-up of one block's VLM text before it becomes `block_content`: PaddleX's PaddleOCR-VL chain.

Per block, in order: cut runaway repetition, turn `\( \)` / `\[ \]` into `$` / `$$`, and for tables turn
OTSL into HTML. Chart text stays pipe-separated in `block_content`, as upstream: the Markdown renderer
(`docengine.markdown`) turns it into a table.
"""

from __future__ import annotations

from collections import Counter

from docengine.recognition.otsl import otsl_to_html

TEXT_MIN_CHARS = 50        # shorter outputs are never truncated
TABLE_MIN_CHARS = 5000     # tables are long by nature


def _shortest_period(s: str) -> str | None:
    """The shortest unit that, repeated, makes up all of `s`."""
    n = len(s)
    for size in range(1, n // 2 + 1):
        if n % size == 0 and s[:size] * (n // size) == s:
            return s[:size]
    return None


def _repeating_suffix(s: str, min_unit: int = 8, min_repeats: int = 5) -> tuple[str, str, int] | None:
    """(prefix, unit, count) when `s` ends with >= `min_repeats` copies of a unit; the longest unit wins."""
    n = len(s)
    for size in range(n // min_repeats, min_unit - 1, -1):
        unit = s[n - size:]
        if all(s.startswith(unit, n - k * size) for k in range(2, min_repeats + 1)):
            end = n - min_repeats * size
            while end >= size and s.startswith(unit, end - size):
                end -= size
            return s[:end], unit, (n - end) // size
    return None


def truncate_repetitive_content(content: str, min_count: int = TEXT_MIN_CHARS, line_threshold: int = 10,
                                char_threshold: int = 10, min_len: int = 10) -> str:
    """Undo a decoder stuck in a loop: the three rules of PaddleX, tried in order.

    1. one line over 100 chars ending in >= 5 repeats (unit >= 8 chars) covering > 50% of it: cut the repeats;
    2. one line that is nothing but >= `char_threshold` repeats of a unit: that unit;
    3. >= `line_threshold` lines, one of them >= 80% of all and seen >= `line_threshold` times: that line.
    """
    if len(content) < min_count:
        return content
    stripped = content.strip()
    if not stripped:
        return content
    if "\n" not in stripped and len(stripped) > 100:
        suffix = _repeating_suffix(stripped)
        if suffix and len(suffix[1]) * suffix[2] > len(stripped) * 0.5:
            return suffix[0]
    if "\n" not in stripped and len(stripped) > min_len:
        unit = _shortest_period(stripped)
        if unit and len(stripped) // len(unit) >= char_threshold:
            return unit
    lines = [line.strip() for line in content.split("\n") if line.strip()]
    if len(lines) < line_threshold:
        return content
    line, count = Counter(lines).most_common(1)[0]
    if count >= line_threshold and count / len(lines) >= 0.8:
        return line
    return content


def normalize_latex_delimiters(label: str, text: str) -> str:
    r"""Markdown math delimiters for text that uses a `\( \)` or `\[ \]` pair.

    Every `$` already there goes first, then `\(` -> ` $ `, `\)` -> ` $`, `\[` -> ` $$ `, `\]` -> ` $$ `
    (a doubled `\[\[` counts once). A `formula_number` keeps no `$` at all: it is shown inside `\tag*{}`.
    """
    if not (("\\(" in text and "\\)" in text) or ("\\[" in text and "\\]" in text)):
        return text
    text = text.replace("$", "")
    text = (text.replace("\\(", " $ ").replace("\\)", " $")
            .replace("\\[\\[", "\\[").replace("\\]\\]", "\\]")
            .replace("\\[", " $$ ").replace("\\]", " $$ "))
    if label == "formula_number":
        text = text.replace("$", "")
    return text


def table_to_html(text: str) -> str:
    """OTSL -> HTML; text with no OTSL cell (already HTML, or prose) is kept as it is."""
    return otsl_to_html(text) or text


def postprocess(label: str, text: str | None) -> str:
    """`block_content` of a block labelled `label` from the VLM's text (None, as PaddleX allows, is "")."""
    text = truncate_repetitive_content(text or "", TABLE_MIN_CHARS if label == "table" else TEXT_MIN_CHARS)
    text = normalize_latex_delimiters(label, text)
    if label == "table":
        text = table_to_html(text)
    return text
