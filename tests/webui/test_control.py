"""The page's control of a job in a real Chromium against the real stack (API keys on): Cancel stops a long
job, and what the server refuses is shown as a clear message, never as a stack trace."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from devkit.documents import sample_pdf
from devkit.stack import Stack, eventually
from tests.jobs.conftest import KEY
from tests.webui.browser import find, screenshots, text_of, wait

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {KEY}"}


def served(stack: Stack) -> int:
    return int(httpx.get(f"{stack.vlm_url}/stats", timeout=10).json()["served"])


def test_cancel_stops_a_40_page_job(page: WebDriver, stack: Stack, tmp_path: Path) -> None:
    """Screenshot `cancelled`: "Cancelled." with the progress bar stopped short of 40 pages, the Cancel button
    greyed out, and only the pages that were done before the cancel shown below it."""
    document = tmp_path / "long.pdf"
    document.write_bytes(sample_pdf(40)[0])
    page.find_element("id", "key").send_keys(KEY)
    page.find_element("id", "file").send_keys(str(document))
    page.find_element("id", "start").click()
    wait(page, lambda d: find(d, ".page"))                     # the first page is shown while the job runs
    assert page.find_element("id", "job").get_attribute("data-state") == "following"
    page.find_element("id", "cancel").click()

    wait(page, lambda d: d.find_element("id", "job").get_attribute("data-ended"))
    assert page.find_element("id", "job").get_attribute("data-state") == "cancelled"
    assert text_of(page, "state") == "Cancelled." and not page.find_element("id", "cancel").is_enabled()
    job = page.find_element("id", "job").get_attribute("data-job-id")
    status = httpx.get(f"{stack.url}/api/v2/ocr/jobs/{job}", headers=AUTH, timeout=30).json()["data"]
    assert status["state"] == "failed" and status["errorMsg"] == "cancelled"
    done = status["extractProgress"]["extractedPages"]
    assert done < 40 and text_of(page, "count") == f"{done} / 40 pages"
    shown = len(find(page, ".page"))      # the lines sent until the job ended (a page whose line was written
    assert 1 <= shown < 40                # as the cancel came may be shown without being counted as done)

    def quiet() -> bool:   # no recogniser call for a second: the job's pages stopped in Triton
        before = served(stack)
        time.sleep(1.0)
        return served(stack) == before

    assert eventually(quiet, 60)
    assert len(find(page, ".page")) == shown                     # and no page arrived since
    again = httpx.get(f"{stack.url}/api/v2/ocr/jobs/{job}", headers=AUTH, timeout=30).json()["data"]
    assert again["extractProgress"]["extractedPages"] == done
    screenshots(page, "cancelled")


def message(page: WebDriver) -> str:
    alert = page.find_element("id", "message")
    wait(page, lambda _: alert.is_displayed())
    assert alert.get_attribute("role") == "alert"
    text = str(alert.text)
    assert not any(word in text for word in ("Traceback", "TypeError", "undefined", "[object", " at ")), text
    return text


def test_an_invalid_file_gets_a_clear_message(page: WebDriver, tmp_path: Path) -> None:
    """Screenshot `invalid-file`: the form with notes.pdf chosen, and above the empty results a red message
    saying that the file is neither a PDF nor an image, with the request's log id."""
    page.find_element("id", "start").click()                    # nothing chosen: the page says so itself
    assert message(page) == "Choose a file or enter a URL first."

    document = tmp_path / "notes.pdf"
    document.write_text("These are notes, not a PDF.\n")
    page.find_element("id", "file").send_keys(str(document))
    page.find_element("id", "start").click()                    # no key yet: the server refuses it
    wait(page, lambda d: "API key" in d.find_element("id", "message").text)
    assert message(page).startswith("The server needs a valid API key: Missing or invalid API key")

    page.find_element("id", "key").send_keys(KEY)
    page.find_element("id", "start").click()
    wait(page, lambda d: "neither" in d.find_element("id", "message").text)
    text = message(page)
    assert text.startswith("The server refused it: the file is neither a PDF nor a PNG, JPEG, BMP, WebP or "
                           "TIFF image") and "log id " in text
    assert not page.find_element("id", "job").is_displayed() and not find(page, ".page")
    screenshots(page, "invalid-file")
