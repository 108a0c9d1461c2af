"""One resolver of request options: recognition and assembly read the same switches, so they cannot disagree.

The regression: with layout detection off and `promptLabel` `chart` (or `seal`), recognition read the page
as a chart, while assembly still thought chart recognition was off. The rows landed in `block_content`, the
Markdown was empty and `model_settings.use_chart_recognition` was false (PaddleX sets it true).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from contract.models import LayoutParsingRequest
from devkit.documents import sample_pdf
from docengine.options import parse_options
from docengine.pipeline import Engine
from docengine.settings import EngineSettings
from docengine.types import VLMTask


class Reader:
    """A VLM that answers each prompt with a fixed text, and records the prompts it was asked."""

    ANSWERS = {"Chart Recognition:": "Year | Sales\n2024 | 10\n2025 | 12",
               "Seal Recognition:": "Port Authority"}

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def recognize(self, owner: str, tasks: list[VLMTask], *, background: bool = False) -> list[str]:
        self.prompts += [t.prompt for t in tasks]
        return [self.ANSWERS.get(t.prompt, "text") for t in tasks]

    async def aclose(self) -> None:
        pass


class NoDetector:
    def detect(self, pages: list[Any]) -> list[list[Any]]:
        raise AssertionError("layout detection is off")


async def parse_whole_page(prompt_label: str) -> tuple[dict[str, Any], Reader]:
    pdf, _ = sample_pdf(1)
    req = LayoutParsingRequest.model_validate({
        "file": base64.b64encode(pdf).decode(), "fileType": 0, "visualize": False,
        "useLayoutDetection": False, "promptLabel": prompt_label})
    reader = Reader()
    engine = Engine(EngineSettings(_env_file=None, profile="gpu"), detector=NoDetector(),  # type: ignore[arg-type]
                    vlm=reader)  # type: ignore[arg-type]
    try:
        result = await engine.parse(req, "options-test")
    finally:
        await engine.aclose()
    return result["layoutParsingResults"][0], reader


async def test_layout_off_chart_is_read_and_rendered_as_a_chart() -> None:
    page, reader = await parse_whole_page("chart")
    assert reader.prompts == ["Chart Recognition:"]
    pruned = page["prunedResult"]
    assert pruned["model_settings"]["use_chart_recognition"] is True
    assert pruned["parsing_res_list"][0]["block_content"] == Reader.ANSWERS["Chart Recognition:"]
    markdown = page["markdown"]["text"]
    assert "<table" in markdown and "<th style='text-align: center;'>Sales</th>" in markdown
    assert "<td style='text-align: center;'>2025</td>" in markdown


async def test_layout_off_seal_is_read_and_rendered_with_its_text() -> None:
    page, reader = await parse_whole_page("seal")
    assert reader.prompts == ["Seal Recognition:"]
    pruned = page["prunedResult"]
    assert pruned["model_settings"]["use_seal_recognition"] is True
    assert pruned["parsing_res_list"][0]["block_content"] == "Port Authority"
    markdown = page["markdown"]["text"]
    assert markdown.startswith('<div style="text-align: center;"><img src="imgs/img_in_seal_box_0_0_')
    assert markdown.endswith("\n\nPort Authority")


@pytest.mark.parametrize("label", ["chart", "seal"])
def test_recognition_and_assembly_read_one_resolution(label: str) -> None:
    req = LayoutParsingRequest(file="x", use_layout_detection=False, prompt_label=label)  # type: ignore[arg-type]
    options = parse_options(req, EngineSettings(_env_file=None))  # type: ignore[call-arg]
    switch = f"use_{label}_recognition"
    assert getattr(options.recognition, switch) is getattr(options.assemble, switch) is True
    assert options.assemble.model_settings()[switch] is True
    with_layout = parse_options(LayoutParsingRequest(file="x", prompt_label=label),  # type: ignore[arg-type]
                                EngineSettings(_env_file=None))  # type: ignore[call-arg]
    assert getattr(with_layout.recognition, switch) is getattr(with_layout.assemble, switch) is False
