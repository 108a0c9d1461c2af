"""PaddleOCR's documented Python client, unchanged, against the real stack: every file it writes exists and
decodes, and the Markdown's image links point at the images it wrote."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from devkit.documents import TITLE, encode_image, render_page, sample_pdf
from devkit.stack import Stack, running_stack
from tests.e2e import docs

pytestmark = pytest.mark.slow

CLIENT = Path(__file__).with_name("paddleocr_client.py")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("client"), recogniser="cpu", workers=1) as running:
        yield running


def run_client(stack: Stack, workdir: Path, name: str, data: bytes, file_type: int) -> str:
    workdir.mkdir()
    (workdir / name).write_bytes(data)
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    argv = [sys.executable, str(CLIENT), f"{stack.url}/layout-parsing", f"./{name}", str(file_type)]
    run = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def jpeg_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "JPEG"
        image.load()
        return image.size


def test_the_documented_client_saves_markdown_images_and_visualisation_of_a_pdf(stack: Stack,
                                                                              tmp_path: Path) -> None:
    out = run_client(stack, tmp_path / "pdf", "report.pdf", docs.figure_pdf(), 0)
    assert "Markdown document saved at markdown_0/doc.md" in out
    markdown = (tmp_path / "pdf" / "markdown_0" / "doc.md").read_text()
    assert TITLE in markdown
    links = re.findall(r'src="(imgs/[^"]+\.jpg)"', markdown)
    assert len(links) == 1
    width, height = jpeg_size(tmp_path / "pdf" / "markdown_0" / links[0])
    assert width > 200 and height > 200
    assert jpeg_size(tmp_path / "pdf" / "layout_det_res_0.jpg") == (1190, 1684)
    root = tmp_path / "pdf"
    written = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert written == {"report.pdf", "markdown_0/doc.md", f"markdown_0/{links[0]}", "layout_det_res_0.jpg"}


def test_the_documented_client_handles_an_image_and_a_page_without_pictures(stack: Stack,
                                                                           tmp_path: Path) -> None:
    rgb = render_page(sample_pdf(1)[0], 0, dpi=100)
    out = run_client(stack, tmp_path / "jpg", "demo.jpg", encode_image(rgb, "JPEG", quality=90), 1)
    assert "Output image saved at layout_det_res_0.jpg" in out
    assert TITLE in (tmp_path / "jpg" / "markdown_0" / "doc.md").read_text()
    assert jpeg_size(tmp_path / "jpg" / "layout_det_res_0.jpg") == (rgb.shape[1], rgb.shape[0])
    assert not (tmp_path / "jpg" / "markdown_0" / "imgs").exists()
