"""One page's layout boxes to VLM tasks (`prepare_page`), and the VLM's texts back to blocks (`finish_page`).

Between the two the pipeline sends the tasks to the VLM, so everything the second half needs (figure tokens
of tables, merged groups) travels in `PageWork`. Behaviour follows PaddleX's PaddleOCR-VL pipeline.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from docengine.markdown import image_path
from docengine.options import RecognitionOptions
from docengine.recognition import crops, prompts
from docengine.types import Block, LayoutBox, VLMTask

# Boxes a table absorbs as `[Fn]` tokens (the reference's image labels: `image`, `figure` of older models).
FIGURE_LABELS = frozenset({"image", "figure"})


@dataclass
class PageWork:
    """A page between `prepare_page` and `finish_page`.

    `blocks` are in reading order (as PaddleX leaves them after merging: a picture or table lying between
    merged paragraphs follows the merged group). `tasks` pair a block index with its VLM task.
    """

    blocks: list[Block]
    tasks: list[tuple[int, VLMTask]]
    figure_tokens: dict[int, dict[str, str]] = field(default_factory=dict)   # table index -> token -> path
    absorbed: set[int] = field(default_factory=set)    # figures inside a table: never returned as blocks
    leaders: dict[int, int] = field(default_factory=dict)   # merged block -> first block of its group
    given: dict[int, str] = field(default_factory=dict)     # block -> its text, known without recognition


@dataclass
class _Unit:
    """Blocks that go to the VLM as one image: a single block, or a merged group led by its first member."""

    members: list[int]
    aligns: list[str] = field(default_factory=list)


def prepare_page(image: np.ndarray, boxes: list[LayoutBox] | None, options: RecognitionOptions) -> PageWork:
    """Crop every box and decide what the VLM reads.

    `boxes` come post-processed and overlap-filtered from the layout stage, in reading order. None means
    layout detection is off: the whole page is one block labelled `prompt_label`.
    """
    height, width = image.shape[:2]
    if boxes is None:
        boxes = [LayoutBox(cls_id=0, label=options.prompt_label, score=1.0, coordinate=[0, 0, width, height])]
    switches = {"use_chart_recognition": options.use_chart_recognition,
                "use_seal_recognition": options.use_seal_recognition}
    unsent = prompts.unsent_labels(**switches, use_ocr_for_image_block=options.use_ocr_for_image_block)
    image_like = prompts.image_like_labels(use_chart_recognition=options.use_chart_recognition)
    ints = [crops.int_box(b.coordinate, width, height) for b in boxes]
    cuts = [crops.crop(image, b.coordinate, b.polygon_points) for b in boxes]

    if options.merge_layout_blocks:
        units = plan_merges([b.label for b in boxes], ints, [(c.shape[0], c.shape[1]) for c in cuts],
                            unsent | {"table"})
    else:
        units = [_Unit([i]) for i in range(len(boxes))]

    figure_boxes = [i for i, b in enumerate(boxes) if b.label in FIGURE_LABELS]
    figures = [(ints[i], image_path(boxes[i].label, ints[i])) for i in figure_boxes]
    position = {source: n for n, source in enumerate(u for unit in units for u in unit.members)}

    work = PageWork(blocks=[], tasks=[])
    absorbed_sources: set[int] = set()
    for unit in units:
        lead = unit.members[0]
        for source in unit.members:
            box = boxes[source]
            block = Block(label=box.label, bbox=list(ints[source]), group_id=position[lead],
                          polygon_points=box.polygon_points,
                          extra={"recovered": True} if box.recovered else {})
            if box.label in image_like:
                block.image_path = image_path(box.label, ints[source])
                block.image = cuts[source]
            work.blocks.append(block)
            if source != lead:
                work.leaders[position[source]] = position[lead]
        picture = (crops.stack_vertically([cuts[m] for m in unit.members], unit.aligns)
                   if len(unit.members) > 1 else cuts[lead])
        if boxes[lead].label in unsent or picture.size == 0:
            continue
        kind = prompts.task_kind(boxes[lead].label, **switches)
        if kind == "table" and figures:
            picture, tokens, inside = crops.tokenize_figures(picture, ints[lead], figures)
            if tokens:
                work.figure_tokens[position[lead]] = tokens
            absorbed_sources.update(figure_boxes[i] for i in inside)
        elif kind == "formula":
            picture = crops.tight_formula_crop(picture)
        elif kind == "spotting":
            picture = crops.upscale_for_spotting(picture)
        work.tasks.append((position[lead], options.task(picture, kind)))
    work.absorbed = {position[s] for s in absorbed_sources}
    return work


def plan_merges(labels: Sequence[str], boxes: Sequence[Sequence[int]], sizes: Sequence[tuple[int, int]],
                keep_apart: frozenset[str]) -> list[_Unit]:
    """Group consecutive `text` blocks that the VLM should read as one image, and the order blocks end in.

    Two neighbours (among blocks not in `keep_apart`) join when they sit side by side ("cross": no horizontal
    overlap, the next starts right of the previous within 30% of the wider, and starts above its bottom), or
    one under the other ("up-down": horizontal overlap, vertical gap under half the taller, exactly one of the
    left/right edges aligned within 5 px, and the union of both touches a `keep_apart` block such as a table
    or picture). A group whose stacked image would be 3 or more times taller than wide is not merged. Blocks
    of `keep_apart` lying between a group's members follow the group. `sizes` are crop (height, width).
    """
    mergeable = [i for i, label in enumerate(labels) if label not in keep_apart]
    groups: list[_Unit] = []
    for n, current in enumerate(mergeable):
        align = _join(mergeable[n - 1], current, labels, boxes, keep_apart) if n else None
        if align is None:
            groups.append(_Unit([current]))
        else:
            groups[-1].members.append(current)
            groups[-1].aligns.append(align)

    starts = {g.members[0]: g for g in groups}
    units: list[_Unit] = []
    index = 0
    while index < len(labels):
        group = starts.get(index)
        if group is None:
            if labels[index] in keep_apart:
                units.append(_Unit([index]))
            index += 1
            continue
        width = max(sizes[m][1] for m in group.members)
        height = sum(sizes[m][0] for m in group.members)
        if len(group.members) > 1 and (width == 0 or height / width >= 3):
            units.extend(_Unit([m]) for m in group.members)
        else:
            units.append(group)
        end = group.members[-1]
        units.extend(_Unit([i]) for i in range(index + 1, end) if labels[i] in keep_apart)
        index = end + 1
    return units


def _join(prev: int, cur: int, labels: Sequence[str], boxes: Sequence[Sequence[int]],
          keep_apart: frozenset[str]) -> str | None:
    """How block `cur` joins the block before it ("left", "right", "center"), or None when it does not."""
    if not labels[prev] == labels[cur] == "text":
        return None
    px1, py1, px2, py2 = boxes[prev]
    cx1, cy1, cx2, cy2 = boxes[cur]
    overlaps = min(px2, cx2) - max(px1, cx1) > 0
    if not overlaps:
        if cx1 > px2 and cy1 < py2 and cx1 - px2 < max(px2 - px1, cx2 - cx1) * 0.3:
            return "center"
        return None
    left, right = abs(cx1 - px1) <= 5, abs(cx2 - px2) <= 5
    if (cy2 >= py1 and abs(cy1 - py2) < max(py2 - py1, cy2 - cy1) * 0.5 and left != right
            and _touches_other(prev, cur, labels, boxes, keep_apart)):
        return "left" if left else "right"
    return None


def _touches_other(a: int, b: int, labels: Sequence[str], boxes: Sequence[Sequence[int]],
                   keep_apart: frozenset[str]) -> bool:
    x1, y1 = min(boxes[a][0], boxes[b][0]), min(boxes[a][1], boxes[b][1])
    x2, y2 = max(boxes[a][2], boxes[b][2]), max(boxes[a][3], boxes[b][3])
    for i, (ox1, oy1, ox2, oy2) in enumerate(boxes):
        if i in (a, b) or labels[i] not in keep_apart:
            continue
        if min(x2, ox2) - max(x1, ox1) > 0 and min(y2, oy2) - max(y1, oy1) > 0:
            return True
    return False


# --- after the VLM ---------------------------------------------------------------------------------------

_FIGURE_TOKEN = re.compile(r"\[F(\d+)\]")
_LOC = re.compile(r"<\|LOC_(\d+)\|>")
_SPOTTING_MARKERS = re.compile(r"<\|(?:TEXT_START|TEXT_END|LOC_BEGIN|LOC_END)\|>")


def finish_page(work: PageWork, texts: list[str], options: RecognitionOptions) -> list[Block]:
    """The page's blocks with their content; `texts` are the VLM answers in `work.tasks` order.

    Each text is post-processed for its label (texts in `work.given` are final as they are); `[Fn]`
    tokens in tables become the figure's `<img>` (followed by the figure's own text when image blocks are
    read); figures absorbed by a table are left out; group ids are the final index of each group's first
    block.
    """
    from docengine.recognition import textpost

    if len(texts) != len(work.tasks):
        raise ValueError(f"{len(texts)} VLM texts for {len(work.tasks)} tasks")
    contents: dict[int, str] = {}
    extras: dict[int, dict[str, Any]] = {}
    for (index, _task), text in zip(work.tasks, texts, strict=True):
        block = work.blocks[index]
        content = textpost.postprocess(block.label, text)
        if block.label == "spotting":
            content, spotting = parse_spotting(content, block.bbox)
            extras[index] = {"spotting": spotting}
        contents[index] = content
    contents.update(work.given)

    path_to_block = {b.image_path: i for i, b in enumerate(work.blocks) if b.image_path}
    for index, tokens in work.figure_tokens.items():
        contents[index] = _restore_figures(contents.get(index, ""), tokens, path_to_block, contents)

    kept = [i for i in range(len(work.blocks)) if i not in work.absorbed]
    final = {old: new for new, old in enumerate(kept)}
    out = []
    for old in kept:
        block = work.blocks[old]
        leader = work.leaders.get(old, old)
        out.append(dataclasses.replace(block, content=contents.get(old, ""),
                                       group_id=final.get(leader, final[old]),
                                       extra={**block.extra, **extras.get(old, {})}))
    return out


def _restore_figures(html: str, tokens: Mapping[str, str], path_to_block: Mapping[str, int],
                     contents: Mapping[int, str]) -> str:
    def swap(match: re.Match[str]) -> str:
        path = tokens.get(match.group(0))
        if path is None:
            return match.group(0)
        tag = f'<img src="{path}" alt="Image" />'
        text = contents.get(path_to_block.get(path, -1), "")
        return f"{tag}\n\n{text}\n\n" if text else tag

    return _FIGURE_TOKEN.sub(swap, html)


def parse_spotting(text: str, bbox: Sequence[int]) -> tuple[str, dict[str, list[Any]]]:
    """Text spans and their quads from a spotting answer: each text is followed by 8 `<|LOC_n|>` tokens.

    Locations are normalised to 0..1000 over the block; they come back as page pixels. The block content is
    the texts joined by blank lines.
    """
    x1, y1, x2, y2 = bbox
    width, height = x2 - x1, y2 - y1
    plain = _SPOTTING_MARKERS.sub("", text)
    polys: list[list[list[float]]] = []
    texts: list[str] = []
    locs = list(_LOC.finditer(plain))
    start = 0
    for i in range(0, len(locs) - 7, 8):
        group = locs[i:i + 8]
        values = [int(m.group(1)) for m in group]
        polys.append([[x1 + values[j] / 1000 * width, y1 + values[j + 1] / 1000 * height]
                      for j in range(0, 8, 2)])
        texts.append(plain[start:group[0].start()].strip())
        start = group[-1].end()
    return "\n\n".join(texts), {"rec_polys": polys, "rec_texts": texts}
