"""Document-wide levels of paragraph titles, as `restructurePages` and `/restructure-pages` give them.

Numbered titles let three signals vote (the level their numbering implies, the order in which numbering styles
first appear, and their line-height cluster); unnumbered ones are level 1 when they are a well-known section
name, otherwise they take their height cluster.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np

from docengine.types import Block

_STYLES: list[tuple[str, re.Pattern[str]]] = [
    ("bracket", re.compile(r"^\s*[(（]?\d+(?:\.\d+)*[)）]")),
    ("roman", re.compile(r"^\s*[IVX]+(?:[.．)\s]|$)", re.I)),
    ("chinese", re.compile(
        r"^\s*(?:第|[（(])?[一二三四五六七八九十]{1,2}(?:[章节篇卷部条题讲课回）)]|(?![a-zA-Z\u4e00-\u9fa5]))")),
    ("letter", re.compile(r"^\s*[A-Za-z][.．)]")),  # "A." or "b)"; not "A Study of ..."
    ("number", re.compile(r"^\s*(\d+(?:\.\d+)*)(?![）)\d])")),
]
_STYLE_LEVEL = {"bracket": 4, "roman": 1, "chinese": 1, "letter": 2}

# Unnumbered titles that always open a top-level section.
_KEYWORDS = {
    "ABSTRACT", "SUMMARY", "RESUME", "CONTENTS", "INTRODUCTION", "BACKGROUND", "BACKGROUNDANDRELATEDWORK",
    "RELATEDWORK", "THEORETICALMODELS", "DATA", "METHOD", "METHODS", "METHODOLOGY", "TOPICANALYSIS", "RESULT",
    "RESULTS", "DISCUSSION", "CONCLUSION", "CONCLUSIONS", "LIMITATIONS", "ACKNOWLEDGMENTS",
    "ACKNOWLEDGEMENTS", "REFERENCE", "REFERENCES", "APPENDIX", "APPENDICES",
    "摘要", "绪论", "引言", "目录", "研究背景", "相关工作", "研究方法", "实验结果", "讨论", "结论", "致谢",
    "参考文献", "附录",
}


def numbering_style(title: str) -> tuple[str | None, int]:
    """A title's numbering style and the level it implies: "1.2 Scope" -> ("number", 2); none: (None, -1)."""
    for name, pattern in _STYLES:
        match = pattern.match(title)
        if match:
            if name == "number":
                return name, match.group(1).count(".") + 1
            return name, _STYLE_LEVEL[name]
    return None, -1


def _line_height(block: Block) -> float:
    lines = max(1, sum(1 for line in block.content.split("\n") if line.strip()))
    return (block.bbox[3] - block.bbox[1]) / lines


def _height_levels(heights: list[float]) -> list[int]:
    """KMeans (k <= 4) over line heights: the tallest cluster is level 1, the next level 2, ..."""
    k = min(4, len(set(heights)))
    if k <= 1:
        return [1] * len(heights)
    from sklearn.cluster import KMeans  # imported on first use: it takes a second

    data = np.asarray(heights, dtype=float).reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = KMeans(n_clusters=k, random_state=42, n_init=10).fit(data)
    centers = km.cluster_centers_.reshape(-1)
    rank = {int(c): r + 1 for r, c in enumerate(np.argsort(-centers))}
    return [rank[int(np.argmin(np.abs(centers - h)))] for h in heights]


def relevel_paragraph_titles(titles: Sequence[Block]) -> None:
    """Give every paragraph title a document-wide `extra["title_level"]` (1 = top), in place.

    Numbered titles let three signals vote: the level their numbering implies, the order in which numbering
    styles first appear, and their line-height cluster; without a majority the style order wins. Unnumbered
    titles are level 1 when they are a well-known section name, otherwise they take their height cluster.
    """
    if not titles:
        return
    clusters = _height_levels([_line_height(t) for t in titles])
    styles = [numbering_style(t.content) for t in titles]
    first_seen: dict[str, int] = {}
    for name, _ in styles:
        if name is not None and name not in first_seen:
            first_seen[name] = len(first_seen) + 1
    first_number_level = 0
    for title, (name, level), cluster in zip(titles, styles, clusters, strict=True):
        if name is not None:
            relative = first_seen[name]
            if name == "number":
                first_number_level = first_number_level or level
                relative += level - first_number_level
            votes = Counter([level, relative, cluster]).most_common(1)[0]
            final = votes[0] if votes[1] > 1 else relative
        elif re.sub(r"\s", "", title.content.upper().strip().rstrip("：: ")) in _KEYWORDS:
            final = 1
        else:
            final = cluster
        title.extra["title_level"] = max(1, int(final))
