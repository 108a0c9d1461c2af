"""A page's text between layout and recognition: what no box covers is recovered, and the text of text
blocks is taken from the PDF's own layer where it can be trusted. The pipeline's one hook for both.

`read_layer` reads the layer when the request needs it (a PDF, and recovery or a text source other than
`vlm`); `prepare` runs recovery (`docengine.recovery`), then `blocks.prepare_page`, then takes from the
layer the text of every text-like block whose layer passes `layertext.distrust`, so that its recognition
task is never sent. Each block that is read records where its text came from (`extra["text_source"]`:
`pdf` or `vlm`), each recovered block says so (`extra["recovered"]`), and `data_info` counts both for the
response. Tables, formulas, charts, seals and images are always recognised.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from docengine import layertext, recovery, textlayer
from docengine.blocks import PageWork, prepare_page
from docengine.layout.textlines import TextLineDetector
from docengine.options import ParseOptions, TextOptions
from docengine.textlayer import Char, TextLayer
from docengine.types import Block, DecodedDocument, LayoutBox

log = logging.getLogger(__name__)

# Blocks whose text the layer may give: prose of every kind (the labels recovery may grow). Not tables,
# formulas (and their numbers), charts, seals, images or vertical text, which always go to the recogniser.
LAYER_LABELS = recovery.PROSE_LABELS


async def read_layer(doc: DecodedDocument, index: int, options: TextOptions) -> TextLayer | None:
    """The page's text layer when this request uses it; None otherwise and for images."""
    if not options.recover and options.source == "vlm":
        return None
    return await textlayer.read_layer(doc, index)


def prepare(page: np.ndarray, boxes: list[LayoutBox] | None, layer: TextLayer | None, options: ParseOptions,
            lines: TextLineDetector) -> PageWork:
    """`blocks.prepare_page` on the boxes with what they missed recovered, and the text blocks the layer can
    give already filled in (`PageWork.given`) instead of sent to the recogniser."""
    text = options.text
    chars = layer.chars if layer is not None else []
    usable = boxes is not None and bool(chars) and text.source != "vlm"
    # The page in grey, made once for recovery and the layer's trust, and only when either runs.
    gray = cv2.cvtColor(page, cv2.COLOR_RGB2GRAY) if boxes is not None and (text.recover or usable) else None
    if boxes is not None and gray is not None and text.recover:
        if chars:
            boxes = recovery.recover_from_layer(boxes, chars, gray)
        else:
            size = (page.shape[1], page.shape[0])
            boxes = recovery.drop_text_pictures(boxes, gray, lambda box: lines.lines_in(page, box))
            boxes = recovery.grow_to_ink(boxes, gray)
            boxes = recovery.recover_from_lines(boxes, lines.uncovered_lines(page, boxes), size)
    work = prepare_page(page, boxes, options.recognition)
    if usable and gray is not None:
        take_from_layer(work, gray, chars, text)
    for index, _task in work.tasks:
        work.blocks[index].extra.setdefault("text_source", "vlm")
    return work


def take_from_layer(work: PageWork, gray: np.ndarray, chars: Sequence[Char], options: TextOptions) -> None:
    """Fill in from `chars` each text-like unit (a block, or a merged group of them) the layer can give,
    and drop its recognition task. `gray` is the page in grey."""
    blocks = work.blocks
    owner = recovery.owner_of(np.array([c.centre for c in chars]), [b.bbox for b in blocks])
    members: dict[int, list[int]] = {}
    for member, lead in work.leaders.items():
        members.setdefault(lead, []).append(member)
    kept = []
    for index, task in work.tasks:
        unit = [index, *sorted(members.get(index, []))]
        texts = _unit_text(unit, blocks, chars, owner, gray, options)
        if texts is None:
            kept.append((index, task))
            continue
        work.given[index] = "\n".join(t for t in texts if t)
        blocks[index].extra["text_source"] = "pdf"
    work.tasks = kept


def _unit_text(unit: list[int], blocks: list[Block], chars: Sequence[Char], owner: np.ndarray,
               gray: np.ndarray, options: TextOptions) -> list[str] | None:
    """The texts of a unit's blocks from the layer, or None when any of them must be recognised."""
    texts = []
    for index in unit:
        block = blocks[index]
        if block.label not in LAYER_LABELS:
            return None
        mine = [chars[i] for i in np.flatnonzero(owner == index)]
        if options.source == "pdf":
            reason = None if mine else "no text"
        else:
            x1, y1, x2, y2 = block.bbox
            near = [c for c in chars if c.box[0] < x2 and c.box[2] > x1 and c.box[1] < y2 and c.box[3] > y1]
            ink = layertext.without_rules(layertext.ink_mask(gray[y1:y2, x1:x2]), near)
            covered = layertext.covered_share(near, ink, (x1, y1))
            reason = layertext.distrust(mine, covered, trust_invisible=options.trust_invisible)
        if reason is not None:
            log.debug("block %s %s is recognised: %s", block.label, block.bbox, reason)
            return None
        texts.append(layertext.compose(mine))
    return texts


def data_info(pages: Sequence[Sequence[Block]]) -> dict[str, Any]:
    """`dataInfo` extension fields, present only when they have something to say: `blockSources` (blocks
    read, by where their text came from) when any text came from the PDF or any block was recovered, and
    `recoveredBlocks`. PaddleX clients ignore both."""
    sources: Counter[str] = Counter()
    recovered = 0
    for blocks in pages:
        for block in blocks:
            if "text_source" in block.extra:
                sources[block.extra["text_source"]] += 1
            recovered += bool(block.extra.get("recovered"))
    out: dict[str, Any] = {}
    if sources["pdf"] or recovered:
        out["blockSources"] = {"pdf": sources["pdf"], "vlm": sources["vlm"]}
    if recovered:
        out["recoveredBlocks"] = recovered
    return out
