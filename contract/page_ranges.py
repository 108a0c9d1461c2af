"""Page ranges as users write them: "2,4-6" selects pages 2, 4, 5 and 6, counted from 1 (the first page).

The syntax is PaddleOCR's Job API's (`pageRanges`, the SDK's `page_ranges="1-3"` for the first three pages);
`/layout-parsing` accepts the same as an extension field.
"""

from __future__ import annotations

import re

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


class PageRangeError(ValueError):
    """A page range that cannot be read, or that selects no page of the document."""


def parse_page_ranges(text: str) -> list[tuple[int, int]]:
    """The ranges of `text` as (first, last) page numbers, each counted from 1, in the order written."""
    ranges = []
    for part in text.split(","):
        match = _RANGE.match(part)
        if not match:
            raise PageRangeError(
                f"pageRanges {text!r}: {part.strip()!r} is not a page or a range such as 4-6")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if first < 1 or last < first:
            raise PageRangeError(f"pageRanges {text!r}: {part.strip()!r} is not a range of pages from 1 up")
        ranges.append((first, last))
    return ranges


def select_pages(text: str | None, count: int) -> list[int]:
    """The 0-based indexes of a document of `count` pages that `text` selects, each once, in page order;
    every page when `text` is None or blank."""
    if text is None or not text.strip():
        return list(range(count))
    selected: set[int] = set()
    for first, last in parse_page_ranges(text):
        if first > count:
            raise PageRangeError(f"pageRanges {text!r} asks for page {first}, but the document has "
                                 f"{count} page{'s' if count != 1 else ''}")
        selected.update(range(first - 1, min(last, count)))
    return sorted(selected)
