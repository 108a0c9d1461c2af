"""Settings, image-token counting and the text rules, each on its own."""

from __future__ import annotations

import pytest

from contract.text import halfwidth_punctuation, join_words
from vlm_server.arrange import formula, otsl, paragraphs, rows
from vlm_server.recogniser import Task, task_of
from vlm_server.schemas import MMProcessorKwargs, visual_tokens
from vlm_server.settings import VLMServerSettings
from vlm_server.textlines import Line


def line(x0: float, y0: float, x1: float, y1: float, text: str) -> Line:
    return Line((x0, y0, x1, y1), text, 0.99)


@pytest.mark.parametrize(
    ("pipeline", "name"),
    [
        ("PaddleOCR-VL", "PaddleOCR-VL-0.9B"),
        ("PaddleOCR-VL-1.5", "PaddleOCR-VL-1.5-0.9B"),
        ("PaddleOCR-VL-1.6", "PaddleOCR-VL-1.6-0.9B"),
    ],
)
def test_served_name_follows_the_pipeline(monkeypatch: pytest.MonkeyPatch, pipeline: str, name: str) -> None:
    monkeypatch.setenv("HPS_PIPELINE_NAME", pipeline)
    monkeypatch.delenv("HPS_VLM_MODEL_NAME", raising=False)
    assert VLMServerSettings(_env_file=None).served_model_name == name
    monkeypatch.setenv("HPS_VLM_MODEL_NAME", "my-ocr")
    assert VLMServerSettings(_env_file=None).served_model_name == "my-ocr"


def test_settings_defaults_and_thread_split(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "HPS_VLM_HOST",
        "HPS_VLM_PORT",
        "HPS_VLM_WORKERS",
        "HPS_VLM_QUEUE_SIZE",
        "HPS_VLM_ORT_THREADS",
    ):
        monkeypatch.delenv(var, raising=False)
    settings = VLMServerSettings(_env_file=None)
    assert (settings.vlm_host, settings.vlm_port, settings.vlm_workers, settings.vlm_queue_size) == (
        "127.0.0.1",
        8118,
        2,
        64,
    )
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert VLMServerSettings(_env_file=None, vlm_workers=2).ort_threads == 4
    assert VLMServerSettings(_env_file=None, vlm_workers=16).ort_threads == 1
    monkeypatch.setenv("HPS_VLM_ORT_THREADS", "3")
    assert VLMServerSettings(_env_file=None).ort_threads == 3


def test_visual_tokens_follow_smart_resize() -> None:
    assert visual_tokens(28, 28, None) == 144  # grown to min_pixels: 336 x 336
    assert visual_tokens(2000, 2000, None) == 1225  # shrunk under max_pixels: 980 x 980 (35 x 35)
    assert visual_tokens(56, 560, MMProcessorKwargs(min_pixels=1, max_pixels=10**7)) == 2 * 20


def test_prompts_map_to_tasks() -> None:
    assert task_of("Table Recognition:") is Task.TABLE
    assert task_of(" Formula Recognition: ") is Task.FORMULA
    assert task_of("Spotting:") is Task.SPOTTING
    assert task_of("What does it say?") is Task.OCR


def test_join_words_spaces_words_but_not_cjk_or_hyphenation() -> None:
    assert join_words(["The layout", "detector"]) == "The layout detector"
    assert join_words(["docu-", "ment"]) == "docu-ment"
    assert join_words(["文档解析", "服务"]) == "文档解析服务"
    assert join_words(["PaddleOCR 支持", "中文"]) == "PaddleOCR 支持中文"


def test_fullwidth_punctuation_between_latin_letters_becomes_ascii() -> None:
    assert halfwidth_punctuation("card，a small：x") == "card,a small:x"
    assert halfwidth_punctuation("文档，表格") == "文档，表格"


def test_rows_and_paragraphs_from_boxes() -> None:
    lines = [
        line(0, 0, 100, 20, "first line of a"),
        line(0, 24, 80, 44, "paragraph."),
        line(0, 80, 90, 100, "Second"),
        line(95, 82, 160, 99, "paragraph."),
    ]
    assert [[ln.text for ln in row] for row in rows(lines)] == [
        ["first line of a"],
        ["paragraph."],
        ["Second", "paragraph."],
    ]
    assert paragraphs(lines) == "first line of a paragraph.\nSecond paragraph."
    assert paragraphs([]) == ""


def test_a_block_of_columns_is_read_column_after_column_but_a_command_stays_with_its_description() -> None:
    card = [
        line(0, 0, 60, 20, "x + y"), line(150, 0, 390, 20, "addition"),
        line(0, 24, 60, 44, "x - y"), line(150, 24, 390, 44, "subtraction"),
        line(500, 0, 700, 20, "Paths and Packages"),
        line(500, 24, 560, 44, "path"), line(650, 24, 890, 44, "display the path"),
    ]
    assert paragraphs(card) == "x + y addition x - y subtraction\nPaths and Packages path display the path"


def test_otsl_columns_come_from_all_rows() -> None:
    lines = [
        line(0, 0, 50, 20, "A"),
        line(100, 0, 150, 20, "B"),
        line(200, 0, 250, 20, "C"),
        line(5, 30, 40, 50, "1"),
        line(210, 30, 240, 50, "3"),
    ]
    assert otsl(lines) == "<fcel>A<fcel>B<fcel>C<nl><fcel>1<ecel><fcel>3<nl>"


def test_formula_text_is_escaped_for_latex() -> None:
    assert formula([line(0, 0, 100, 20, "50% of x_1 & {y}")]) == r"\[50\% of x\_1 \& \{y\}\]"
    assert formula([]) == ""
