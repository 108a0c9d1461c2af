"""The 25 PP-DocLayout (V2 and V3) labels by class id, and the label groups other stages branch on.

Ids are the wire's `cls_id`; every detector maps its own classes onto them so that post-processing and
assembly only ever see one label set.
"""

from __future__ import annotations

LABELS: tuple[str, ...] = (
    "abstract",           # 0
    "algorithm",          # 1
    "aside_text",         # 2
    "chart",              # 3
    "content",            # 4
    "display_formula",    # 5
    "doc_title",          # 6
    "figure_title",       # 7
    "footer",             # 8
    "footer_image",       # 9
    "footnote",           # 10
    "formula_number",     # 11
    "header",             # 12
    "header_image",       # 13
    "image",              # 14
    "inline_formula",     # 15
    "number",             # 16
    "paragraph_title",    # 17
    "reference",          # 18
    "reference_content",  # 19
    "seal",               # 20
    "table",              # 21
    "text",               # 22
    "vertical_text",      # 23
    "vision_footnote",    # 24
)
LABEL_IDS: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
NUM_LABELS = len(LABELS)

# Labels that get no reading-order number (`order` is null on the wire).
SKIP_ORDER: frozenset[str] = frozenset({
    "figure_title", "vision_footnote", "image", "chart", "table", "header", "header_image",
    "footer", "footer_image", "footnote", "aside_text",
})

# Blocks that are pictures rather than text: cropped and returned as images, never merged with text.
IMAGE_LABELS: frozenset[str] = frozenset({"image", "header_image", "footer_image"})
# Labels whose crops may become `imgs/...jpg` files (chart only when chart recognition is off).
IMAGE_LIKE_LABELS: frozenset[str] = IMAGE_LABELS | {"seal", "chart"}


def label_of(cls_id: int) -> str:
    return LABELS[cls_id]
