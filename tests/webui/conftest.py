"""What the page's tests share: one real stack (API keys on) for the whole folder, and a fresh headless
Chromium per test with the page open and ready."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from devkit.stack import Stack, running_stack
from tests.jobs.conftest import job_env, synthetic
from tests.webui import browser


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A recogniser of 0.5 s a call, one at a time: a 40-page job runs long enough to be cancelled. A job's
    URL may be on this host (the tests serve documents on loopback)."""
    env = job_env(tmp_path_factory.mktemp("webui-jobs"), HPS_JOB_ALLOW_PRIVATE_URLS="true")
    with running_stack(tmp_path_factory.mktemp("webui-stack"), workers=1, **synthetic(0.5, 1),
                       gateway_env=env) as running:
        yield running


def open_page(url: str, download_dir: Path, language: str = "en-US") -> WebDriver:
    driver = browser.chromium(download_dir, language)
    try:
        driver.get(url)
        browser.wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready"), 60)
    except BaseException:
        driver.quit()
        raise
    return driver


@pytest.fixture
def page(stack: Stack, tmp_path: Path) -> Iterator[WebDriver]:
    """The page of the stack's gateway in English, its downloads going to `tmp_path`."""
    driver = open_page(stack.url + "/", tmp_path)
    yield driver
    driver.quit()
