"""The page in a real Chromium against the real stack (API keys on): a document's pages arrive with their
progress, tables render as tables and formulas typeset, boxes lead to their content, and the downloads hold
what the server sent."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from devkit.documents import TITLE, sample_pdf
from devkit.pages import block_crops
from devkit.stack import Stack, eventually
from tests.jobs.conftest import KEY
from tests.webui.browser import find, screenshots, text_of, wait

pytestmark = pytest.mark.slow


def parse(page: WebDriver, document: Path, key: str = KEY) -> None:
    """Fill in the key and the file, press Parse, and wait until the job and both of its streams are over."""
    page.find_element("id", "key").send_keys(key)
    page.find_element("id", "file").send_keys(str(document))
    page.find_element("id", "start").click()
    wait(page, lambda d: d.find_element("id", "job").get_attribute("data-ended"))


def job_status(stack: Stack, page: WebDriver) -> dict[str, object]:
    job = page.find_element("id", "job").get_attribute("data-job-id")
    answer = httpx.get(f"{stack.url}/api/v2/ocr/jobs/{job}", headers={"Authorization": f"Bearer {KEY}"},
                       timeout=30)
    return dict(answer.json()["data"])


def downloaded(folder: Path, name: str) -> str:
    path = folder / name
    assert eventually(lambda: path.is_file() and path.stat().st_size > 0, 30), f"{name} was not downloaded"
    return path.read_text(encoding="utf-8")


def loaded(image: WebElement, _: WebDriver) -> bool:
    return bool(image.get_property("complete") and image.get_property("naturalWidth"))


def unsigned(text: str) -> str:
    return re.sub(r"\?expires=\d+&signature=[0-9a-f]+", "", text)


def test_a_three_page_pdf_reaches_3_of_3(page: WebDriver, stack: Stack, tmp_path: Path) -> None:
    """Screenshot `three-pages`: the key filled in, the progress bar full at "Done. 3 / 3 pages", and the
    three pages, each its image with coloured layout boxes (reading order and label) beside its blocks."""
    document = tmp_path / "report.pdf"
    document.write_bytes(sample_pdf(3)[0])
    parse(page, document)

    progress = page.find_element("id", "progress")
    assert (progress.get_attribute("value"), progress.get_attribute("max")) == ("3", "3")
    assert text_of(page, "count") == "3 / 3 pages" and text_of(page, "state") == "Done."
    assert page.find_element("id", "job").get_attribute("data-state") == "done"
    assert [h.text for h in find(page, ".page h3")] == ["Page 1", "Page 2", "Page 3"]
    for image in find(page, ".page .canvas img"):      # each page's image, loaded from its signed link
        page.execute_script("arguments[0].scrollIntoView()", image)
        assert wait(page, partial(loaded, image))
    assert all(find(page, f'.page[data-page="{n}"] .box') for n in (1, 2, 3))
    assert TITLE in find(page, ".page")[0].text
    reach = screenshots(page, "three-pages")
    assert reach == {"desktop": 1280, "phone": 390}        # nothing sticks out sideways at either width

    for button in find(page, ".download"):
        button.click()
    jsonl = downloaded(tmp_path, "report.jsonl")
    link = job_status(stack, page)["resultUrl"]["jsonUrl"]    # type: ignore[index]
    served = httpx.get(str(link), timeout=30).text
    assert unsigned(jsonl) == unsigned(served)      # the same lines (links are signed anew for each reading)
    assert [json.loads(line)["result"]["dataInfo"]["pageNumber"] for line in jsonl.splitlines()] == [1, 2, 3]
    assert len(json.loads(downloaded(tmp_path, "report.json"))) == 3
    assert downloaded(tmp_path, "report.md").count(TITLE) == 1


def test_a_table_renders_as_a_table_and_its_box_leads_to_it(page: WebDriver, tmp_path: Path) -> None:
    """Screenshot `table`: one page whose green `table` box is lit, and beside it the same block lit: the
    recognised table drawn as an HTML table (Model | Pages, Layout | 12)."""
    document = tmp_path / "table.pdf"
    document.write_bytes(sample_pdf(1)[0])
    parse(page, document)

    [table] = find(page, '.block[data-kind="table"] table')
    cells = [cell.text for cell in table.find_elements("css selector", "td")]
    assert cells == ["Model", "Pages", "Layout", "12"]          # the recogniser's OTSL, as rows and cells
    [box] = find(page, '.box[data-kind="table"]')
    box.click()
    block = table.find_element("xpath", "ancestor::div[contains(@class, 'block')]")
    assert "active" in str(block.get_attribute("class")) and "active" in str(box.get_attribute("class"))
    assert box.get_attribute("data-block") == block.get_attribute("data-block")
    screenshots(page, "table")

    [title_box] = find(page, '.box[data-kind="title"]')
    title_box.send_keys(Keys.ENTER)                              # the keyboard does what the mouse does
    [title] = find(page, '.block.active')
    assert title.get_attribute("data-kind") == "title" and TITLE in title.text


def test_a_formula_is_typeset(page: WebDriver, tmp_path: Path) -> None:
    """Screenshot `formula`: a picture of one formula read without layout detection as "a formula": a
    single box over the whole picture, and beside it E = mc² typeset by KaTeX."""
    [formula] = [crop for crop in block_crops(sample_pdf(1)[0]) if crop.kind == "formula"]
    document = tmp_path / "formula.jpg"
    document.write_bytes(formula.jpeg)
    page.find_element("id", "opt-layout").click()
    Select(page.find_element("id", "opt-prompt")).select_by_value("formula")
    parse(page, document)

    [block] = find(page, ".block")
    assert block.get_attribute("data-kind") == "formula"
    [math] = block.find_elements("css selector", ".katex-display .katex .katex-mathml math")
    letters = [e.get_attribute("textContent") for e in math.find_elements("css selector", "mi")]
    assert letters == ["E", "m", "c"]
    assert math.find_elements("css selector", "msup mn")[0].get_attribute("textContent") == "2"
    assert block.find_elements("css selector", ".katex-html .mord")        # drawn for the eye too
    assert "$$" not in block.text
    screenshots(page, "formula")


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[str]:
    """`tmp_path` over HTTP on loopback; answers its base URL."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_document_given_by_its_url(page: WebDriver, file_server: str, tmp_path: Path) -> None:
    """Screenshot `by-url`: the URL field filled in instead of a file, pages 2 and 3 asked for (of 3), and
    those two pages shown under "Done. 2 / 2 pages"."""
    (tmp_path / "report.pdf").write_bytes(sample_pdf(3)[0])
    page.find_element("id", "url").send_keys(f"{file_server}/report.pdf")
    page.find_element("id", "opt-pages").send_keys("2-3")
    page.find_element("id", "key").send_keys(KEY)
    page.find_element("id", "start").click()
    wait(page, lambda d: d.find_element("id", "job").get_attribute("data-ended"))

    assert page.find_element("id", "job").get_attribute("data-state") == "done"
    assert text_of(page, "count") == "2 / 2 pages"
    assert [h.text for h in find(page, ".page h3")] == ["Page 2", "Page 3"]     # the document's own numbers
    screenshots(page, "by-url")
