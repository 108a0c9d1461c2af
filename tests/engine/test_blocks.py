"""Layout boxes of a real rendered page -> VLM tasks -> blocks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from contract.models import LayoutParsingRequest
from devkit.documents import render_page, sample_pdf
from docengine.blocks import PageWork, finish_page, parse_spotting, prepare_page
from docengine.errors import InvalidInputError
from docengine.options import RecognitionOptions, parse_options
from docengine.settings import EngineSettings
from docengine.types import LayoutBox

# Where things are on page 0 of `sample_pdf()` rendered at 144 dpi (1190 x 1684 px).
TITLE = [110, 140, 830, 200]
HEADING = [110, 230, 320, 270]
PARA_1 = [110, 295, 920, 332]
PARA_2 = [110, 350, 960, 390]
FORMULA = [380, 475, 540, 530]
TABLE = [110, 582, 1030, 758]
HEADER = [110, 60, 240, 90]


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    pdf, _ = sample_pdf(1)
    return render_page(pdf)


def box(label: str, coords: Sequence[float], order: int | None = None,
        polygon: list[list[float]] | None = None) -> LayoutBox:
    return LayoutBox(cls_id=0, label=label, score=0.9, coordinate=[float(v) for v in coords], order=order,
                     polygon_points=polygon)


def options(**fields: object) -> RecognitionOptions:
    body = {"file": "x", **fields}
    return parse_options(LayoutParsingRequest.model_validate(body), EngineSettings()).recognition


def prompts_of(work: PageWork) -> dict[str, str]:
    return {work.blocks[i].label: task.prompt for i, task in work.tasks}


# --- options ---------------------------------------------------------------------------------------------


def test_options_defaults() -> None:
    opts = options()
    assert opts.use_layout_detection and opts.merge_layout_blocks
    assert not (opts.use_chart_recognition or opts.use_seal_recognition or opts.use_ocr_for_image_block)
    assert opts.prompt_label == "ocr" and not opts.format_block_content
    sampling = (opts.temperature, opts.top_p, opts.repetition_penalty, opts.max_new_tokens)
    assert sampling == (0.0, None, None, 4096)
    assert opts.pixels["ocr"] == (112_896, 1_003_520)
    assert opts.pixels["spotting"] == (112_896, 1_605_632)
    assert opts.skip_special_tokens


def test_options_from_request_fields_and_extra_args() -> None:
    extra = {"temperature": 0.9, "top_p": 0.5, "table_max_pixels": 2_000_000}
    opts = options(temperature=0.3, topP=0.9, repetitionPenalty=1.1, maxNewTokens=100,
                   mergeLayoutBlocks=False, formatBlockContent=True, vlmExtraArgs=extra)
    sampling = (opts.temperature, opts.top_p, opts.repetition_penalty, opts.max_new_tokens)
    assert sampling == (0.3, 0.9, 1.1, 100)
    assert not opts.merge_layout_blocks and opts.format_block_content
    assert opts.pixels["table"] == (112_896, 2_000_000)
    assert options(vlmExtraArgs={"repetition_penalty": 1.05}).repetition_penalty == 1.05
    with pytest.raises(InvalidInputError):
        options(vlmExtraArgs={"top_p": "high"})
    with pytest.raises(InvalidInputError):
        options(vlmExtraArgs={"ocr_min_pixels": 5_000_000})


def test_layout_off_prompt_label_switches_on_its_recognition() -> None:
    assert options(useLayoutDetection=False, promptLabel="chart").use_chart_recognition
    assert options(useLayoutDetection=False, promptLabel="seal").use_seal_recognition
    assert not options(promptLabel="chart").use_chart_recognition    # promptLabel counts only without layout
    spotting = options(useLayoutDetection=False, promptLabel="spotting")
    assert not spotting.skip_special_tokens
    v1 = EngineSettings(pipeline_name="PaddleOCR-VL")
    request = LayoutParsingRequest(file="x", use_layout_detection=False, prompt_label="spotting")
    with pytest.raises(InvalidInputError, match="1.5"):
        parse_options(request, v1)


# --- which blocks become which tasks -------------------------------------------------------------------


def test_prompts_and_unsent_blocks_on_a_real_page(page: np.ndarray) -> None:
    boxes = [box("header", HEADER), box("doc_title", TITLE, 1), box("paragraph_title", HEADING, 2),
             box("text", PARA_1, 3), box("display_formula", FORMULA, 4), box("table", TABLE),
             box("image", [700, 800, 900, 1000]), box("chart", [100, 800, 300, 1000]),
             box("seal", [400, 800, 600, 1000]), box("formula_number", [1000, 480, 1040, 520], 5)]
    work = prepare_page(page, boxes, options())
    assert [b.label for b in work.blocks] == [b.label for b in boxes]
    assert prompts_of(work) == {
        "header": "OCR:", "doc_title": "OCR:", "paragraph_title": "OCR:", "text": "OCR:",
        "display_formula": "Formula Recognition:", "table": "Table Recognition:", "formula_number": "OCR:"}

    read_all = prepare_page(page, boxes, options(useChartRecognition=True, useSealRecognition=True,
                                                 useOcrForImageBlock=True))
    got = prompts_of(read_all)
    assert (got["chart"], got["seal"], got["image"]) == ("Chart Recognition:", "Seal Recognition:", "OCR:")


def test_tasks_carry_sampling_and_category_pixels(page: np.ndarray) -> None:
    opts = options(temperature=0.2, maxNewTokens=512,
                   vlmExtraArgs={"table_min_pixels": 200_000, "formula_max_pixels": 400_000})
    boxes = [box("text", PARA_1), box("table", TABLE), box("display_formula", FORMULA)]
    work = prepare_page(page, boxes, opts)
    tasks = {work.blocks[i].label: t for i, t in work.tasks}
    assert (tasks["text"].min_pixels, tasks["text"].max_pixels) == (112_896, 1_003_520)
    assert (tasks["table"].min_pixels, tasks["table"].max_pixels) == (200_000, 1_003_520)
    assert (tasks["display_formula"].min_pixels, tasks["display_formula"].max_pixels) == (112_896, 400_000)
    assert all(t.temperature == 0.2 and t.max_tokens == 512 and t.skip_special_tokens for t in tasks.values())


def test_crops_have_the_box_size_and_page_pixels(page: np.ndarray) -> None:
    work = prepare_page(page, [box("text", [110.6, 295.2, 920.9, 332.0]), box("table", TABLE)], options())
    (_, text_task), (_, table_task) = work.tasks
    assert text_task.image.shape == (37, 810, 3)
    assert np.array_equal(text_task.image, page[295:332, 110:920])
    assert table_task.image.shape == (176, 920, 3)
    assert work.blocks[0].bbox == [110, 295, 920, 332]


def test_polygon_blocks_are_masked_and_keep_their_points(page: np.ndarray) -> None:
    polygon = [[110.0, 582.0], [1030.0, 582.0], [110.0, 758.0]]
    work = prepare_page(page, [box("table", TABLE, polygon=polygon)], options())
    image = work.tasks[0][1].image
    assert (image[-5:, -100:] == 255).all()              # below the diagonal: masked white
    assert np.array_equal(image[5:20, 5:100], page[587:602, 115:210])
    assert work.blocks[0].polygon_points == polygon


def test_formula_is_cut_to_its_ink(page: np.ndarray) -> None:
    work = prepare_page(page, [box("display_formula", [360, 470, 720, 540])], options())
    image = work.tasks[0][1].image
    assert image.shape[0] < 30 and image.shape[1] < 130
    assert image.min() < 50                              # still the formula's ink


def test_image_like_blocks_get_paths_and_crops(page: np.ndarray) -> None:
    boxes = [box("image", [700.9, 800, 900, 1000]), box("chart", [100, 800, 300, 1000]),
             box("seal", [400, 800, 600, 1000]), box("text", PARA_1)]
    blocks = prepare_page(page, boxes, options()).blocks
    assert blocks[0].image_path == "imgs/img_in_image_box_700_800_900_1000.jpg"
    assert blocks[0].image is not None and blocks[0].image.shape == (200, 200, 3)
    assert blocks[1].image_path == "imgs/img_in_chart_box_100_800_300_1000.jpg"
    assert blocks[2].image_path == "imgs/img_in_seal_box_400_800_600_1000.jpg"
    assert blocks[3].image_path is None and blocks[3].image is None
    charts_read = prepare_page(page, boxes, options(useChartRecognition=True)).blocks
    assert charts_read[1].image_path is None


def test_group_ids_default_to_own_index(page: np.ndarray) -> None:
    boxes = [box("doc_title", TITLE, 1), box("table", TABLE), box("text", PARA_1, 2)]
    work = prepare_page(page, boxes, options())
    assert [b.group_id for b in work.blocks] == [0, 1, 2]


# --- tables absorb their figures ------------------------------------------------------------------------


FIGURE_IN_TABLE = [420, 600, 600, 640]


def test_table_figure_token_painted_and_restored(page: np.ndarray) -> None:
    boxes = [box("doc_title", TITLE, 1), box("table", TABLE), box("image", FIGURE_IN_TABLE),
             box("text", PARA_1, 2)]
    work = prepare_page(page, boxes, options())
    table_index, table_task = work.tasks[1]
    assert work.blocks[table_index].label == "table"
    [(token, path)] = work.figure_tokens[table_index].items()
    assert path == "imgs/img_in_image_box_420_600_600_640.jpg"
    painted = table_task.image[600 - 582:640 - 582, 420 - 110:600 - 110]
    assert (painted == 255).mean() > 0.5 and painted.min() < 100
    assert not np.array_equal(painted, page[600:640, 420:600])
    assert work.absorbed == {2}

    otsl = f"<fcel>Model<fcel>{token}<nl><fcel>Layout<fcel>12<nl>"
    blocks = finish_page(work, ["Title", otsl, "Paragraph"], options())
    assert [b.label for b in blocks] == ["doc_title", "table", "text"]
    table = blocks[1].content
    assert table.startswith("<table>") and token not in table
    assert f'<td><img src="{path}" alt="Image" /></td>' in table
    assert [b.group_id for b in blocks] == [0, 1, 2]
    assert blocks[2].content == "Paragraph"


def test_read_figures_add_their_text_inside_the_table(page: np.ndarray) -> None:
    boxes = [box("table", TABLE), box("image", FIGURE_IN_TABLE)]
    opts = options(useOcrForImageBlock=True)
    work = prepare_page(page, boxes, opts)
    assert [i for i, _ in work.tasks] == [0, 1]
    [token] = work.figure_tokens[0]
    blocks = finish_page(work, [f"<fcel>{token}<nl>", "Scores"], opts)
    assert len(blocks) == 1
    assert "alt=\"Image\" />\n\nScores\n\n" in blocks[0].content


def test_unknown_figure_tokens_are_left_alone(page: np.ndarray) -> None:
    work = prepare_page(page, [box("table", TABLE)], options())
    assert work.figure_tokens == {} and work.absorbed == set()
    assert "[F77]" in finish_page(work, ["<fcel>[F77]<nl>"], options())[0].content


# --- merging text blocks --------------------------------------------------------------------------------


def test_cross_merge_joins_side_by_side_text(page: np.ndarray) -> None:
    left, right = [100, 300, 500, 400], [560, 300, 960, 400]
    work = prepare_page(page, [box("text", left, 1), box("text", right, 2)], options())
    assert len(work.tasks) == 1
    index, task = work.tasks[0]
    assert index == 0 and task.image.shape == (200, 400, 3)
    assert np.array_equal(task.image[:100], page[300:400, 100:500])
    assert np.array_equal(task.image[100:], page[300:400, 560:960])
    assert [b.group_id for b in work.blocks] == [0, 0]
    blocks = finish_page(work, ["both columns"], options())
    assert [(b.content, b.group_id, b.bbox) for b in blocks] == [("both columns", 0, left), ("", 0, right)]

    far = prepare_page(page, [box("text", left), box("text", [700, 300, 1100, 400])], options())
    assert len(far.tasks) == 2                            # gap of 200 px is over 30% of the width
    lower = prepare_page(page, [box("text", left), box("text", [560, 400, 960, 500])], options())
    assert len(lower.tasks) == 2                          # starts below the previous one's bottom
    titles = prepare_page(page, [box("paragraph_title", left), box("paragraph_title", right)], options())
    assert len(titles.tasks) == 2                         # only text merges
    apart = prepare_page(page, [box("text", left), box("text", right)], options(mergeLayoutBlocks=False))
    assert len(apart.tasks) == 2


def test_up_down_merge_needs_a_touching_picture_or_table(page: np.ndarray) -> None:
    upper, lower = [100, 100, 600, 200], [100, 210, 560, 300]
    alone = prepare_page(page, [box("text", upper), box("text", lower)], options())
    assert len(alone.tasks) == 2

    picture = box("image", [580, 150, 900, 400])
    boxes = [box("text", upper, 1), picture, box("text", lower, 2)]
    work = prepare_page(page, boxes, options())
    # the picture between the two paragraphs follows the merged group
    assert [b.label for b in work.blocks] == ["text", "text", "image"]
    assert [i for i, _ in work.tasks] == [0]
    image = work.tasks[0][1].image
    assert image.shape == (190, 500, 3)
    assert np.array_equal(image[100:, :460], page[210:300, 100:560])   # left aligned
    assert (image[100:, 460:] == 255).all()
    assert [b.group_id for b in finish_page(work, ["joined"], options())] == [0, 0, 2]


def test_up_down_merge_needs_exactly_one_aligned_edge(page: np.ndarray) -> None:
    picture = box("table", [580, 150, 900, 400])
    both = [box("text", [100, 100, 600, 200]), box("text", [100, 210, 600, 300]), picture]
    assert len([t for i, t in prepare_page(page, both, options()).tasks if i < 2]) == 2
    right = [box("text", [100, 100, 600, 200]), box("text", [140, 210, 598, 300]), picture]
    work = prepare_page(page, right, options())
    assert work.tasks[0][1].image.shape == (190, 500, 3)
    assert np.array_equal(work.tasks[0][1].image[100:, 42:], page[210:300, 140:598])


def test_tall_merges_are_vetoed(page: np.ndarray) -> None:
    picture = box("image", [150, 100, 500, 600])
    short = [box("text", [100, 100, 200, 150]), box("text", [100, 160, 180, 200]), picture]
    assert [i for i, _ in prepare_page(page, short, options()).tasks] == [0]    # 90 high, 100 wide: merged
    tall = [box("text", [100, 100, 200, 300]), box("text", [100, 310, 180, 500]), picture]
    work = prepare_page(page, tall, options())           # stacked: 390 high, 100 wide
    assert [i for i, _ in work.tasks] == [0, 1]
    assert [b.group_id for b in work.blocks] == [0, 1, 2]


# --- layout off, spotting, finishing ------------------------------------------------------------------


def test_layout_off_reads_the_whole_page_as_one_block(page: np.ndarray) -> None:
    opts = options(useLayoutDetection=False, promptLabel="table")
    work = prepare_page(page, None, opts)
    [block] = work.blocks
    assert (block.label, block.bbox) == ("table", [0, 0, 1190, 1684])
    [(index, task)] = work.tasks
    assert index == 0 and task.prompt == "Table Recognition:" and task.image.shape == page.shape
    plain = prepare_page(page, None, options(useLayoutDetection=False))
    assert plain.blocks[0].label == "ocr" and plain.tasks[0][1].prompt == "OCR:"


def test_spotting_upscales_and_returns_page_quads(page: np.ndarray) -> None:
    small = page[:600, :800].copy()
    opts = options(useLayoutDetection=False, promptLabel="spotting")
    work = prepare_page(small, None, opts)
    task = work.tasks[0][1]
    assert task.prompt == "Spotting:" and task.image.shape == (1200, 1600, 3)
    assert not task.skip_special_tokens and (task.min_pixels, task.max_pixels) == (112_896, 1_605_632)
    answer = ("Annual<|LOC_100|><|LOC_200|><|LOC_500|><|LOC_200|><|LOC_500|><|LOC_300|><|LOC_100|><|LOC_300|>"
              "Report<|LOC_0|><|LOC_0|><|LOC_1000|><|LOC_0|><|LOC_1000|><|LOC_1000|><|LOC_0|><|LOC_1000|>")
    [block] = finish_page(work, [answer], opts)
    assert block.content == "Annual\n\nReport"
    spotting = block.extra["spotting"]
    assert spotting["rec_texts"] == ["Annual", "Report"]
    assert spotting["rec_polys"][0] == [[80.0, 120.0], [400.0, 120.0], [400.0, 180.0], [80.0, 180.0]]
    assert spotting["rec_polys"][1][2] == [800.0, 600.0]


def test_spotting_parser_reads_the_annotated_form_too() -> None:
    text = ("<|TEXT_START|>Hi<|TEXT_END|><|LOC_BEGIN|><|LOC_0|><|LOC_0|><|LOC_500|><|LOC_0|><|LOC_500|>"
            "<|LOC_500|><|LOC_0|><|LOC_500|><|LOC_END|>")
    content, result = parse_spotting(text, [10, 20, 210, 220])
    assert content == "Hi"
    assert result["rec_polys"] == [[[10.0, 20.0], [110.0, 20.0], [110.0, 120.0], [10.0, 120.0]]]


def test_finish_applies_text_postprocessing_and_keeps_pictures_empty(page: np.ndarray) -> None:
    boxes = [box("display_formula", FORMULA), box("image", [700, 800, 900, 1000]), box("text", PARA_1)]
    work = prepare_page(page, boxes, options())
    blocks = finish_page(work, [r"\[E = mc^2\]", "plain text"], options())
    assert blocks[0].content.strip() == "$$ E = mc^2 $$"
    assert blocks[1].content == "" and blocks[1].image_path is not None
    assert blocks[2].content == "plain text"
    with pytest.raises(ValueError):
        finish_page(work, ["only one"], options())
