"""Data passed between the engine's stages. Plain dataclasses, no behaviour beyond small conveniences.

Conventions: page images are RGB `uint8` arrays of shape (H, W, 3); coordinates are page pixels, x1,y1,x2,y2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RequestMeta:
    """What Triton says about a request beside its body: the gateway's logId (the request id), and whether it
    is background work (a page of an asynchronous job), which waits for interactive requests."""

    log_id: str | None = None
    background: bool = False


@dataclass(frozen=True)
class Source:
    """Where a document comes from: Base64 or an http(s) URL, and the declared type (0 PDF, 1 image)."""

    file: str
    file_type: int | None = None
    page_ranges: str | None = None   # "2,4-6": the pages to work on, counted from 1; None: all


@dataclass
class DecodedDocument:
    """A request's file turned into pages, with the `dataInfo` the response reports.

    `pages` may decode each page only when it is read (PDFs and TIFFs do, see `docengine.inputs`), so reading
    one can take a while and can raise `InvalidInputError`; `close()` frees what that needs (the open file)
    and must be called once the pages are no longer read.
    """

    pages: Sequence[np.ndarray]
    data_info: dict[str, Any]
    selected: list[int] | None = None   # the indexes of `pages` a request's pageRanges keeps, in order

    def __len__(self) -> int:
        """Pages the request works on."""
        return len(self.pages) if self.selected is None else len(self.selected)

    def index(self, position: int) -> int:
        """The index in `pages` of the request's page at `position`."""
        return position if self.selected is None else self.selected[position]

    def info(self) -> dict[str, Any]:
        """`dataInfo` of the pages the request works on (read it once they are decoded: a TIFF's frame sizes
        are exact only then)."""
        if self.selected is None or "pages" not in self.data_info:
            return self.data_info
        pages = [self.data_info["pages"][i] for i in self.selected]
        return {**self.data_info, "numPages": len(pages), "pages": pages}

    def close(self) -> None:
        close = getattr(self.pages, "close", None)
        if close is not None:
            close()


@dataclass
class Detection:
    """One raw region from a layout model, already mapped to the PP-DocLayout label ids (0..24)."""

    cls_id: int
    score: float
    box: tuple[float, float, float, float]
    order_key: float | None = None          # lower reads first; None when the model predicts no order
    polygon: list[tuple[float, float]] | None = None


@dataclass
class LayoutBox:
    """A region after post-processing, in the shape of `layout_det_res.boxes[]`."""

    cls_id: int
    label: str
    score: float
    coordinate: list[float]
    order: int | None = None
    polygon_points: list[list[float]] | None = None
    recovered: bool = False     # found after layout, where no box covered text (`docengine.recovery`)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cls_id": self.cls_id,
            "label": self.label,
            "score": float(self.score),
            "coordinate": [int(round(v)) for v in self.coordinate],
            "order": self.order,
        }
        if self.polygon_points is not None:
            out["polygon_points"] = [[float(x), float(y)] for x, y in self.polygon_points]
        return out


@dataclass
class LayoutParams:
    """Layout post-processing settings after request overrides; per-class maps are keyed by int class id."""

    threshold: float | dict[int, float] = 0.5
    nms: bool = True
    unclip_ratio: float | tuple[float, float] | dict[int, float | tuple[float, float]] = 1.0
    merge_mode: str | dict[int, str] = "union"
    shape_mode: str = "auto"


@dataclass(frozen=True)
class LayoutOverrides:
    """A request's `layout*` fields, unresolved: None keeps the default; maps are keyed by class id."""

    threshold: float | dict[str, float] | None = None
    nms: bool | None = None
    unclip_ratio: Any = None      # a ratio, a (w, h) pair, or a map of either
    merge_mode: Any = None        # a mode, or a map of modes
    shape_mode: str | None = None


@dataclass
class VLMTask:
    """One chat-completions call: a block image and its prompt, with the sampling settings of its request."""

    image: np.ndarray
    prompt: str
    min_pixels: int | None = None
    max_pixels: int | None = None
    max_tokens: int = 4096
    temperature: float = 0.0
    top_p: float | None = None
    repetition_penalty: float | None = None
    skip_special_tokens: bool = True


@dataclass
class Block:
    """A recognised region as it goes into `parsing_res_list` and the Markdown."""

    label: str
    bbox: list[int]
    content: str = ""
    group_id: int | None = None
    polygon_points: list[list[float]] | None = None
    image_path: str | None = None            # `imgs/img_in_<label>_box_x1_y1_x2_y2.jpg` for image-like blocks
    image: np.ndarray | None = None          # its crop, for `markdown.images`
    extra: dict[str, Any] = field(default_factory=dict)
