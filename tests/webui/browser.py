"""A headless Chromium for the page's tests: Debian's `chromium` driven through its `chromium-driver`, both
named by path so that Selenium never looks for (or downloads) a browser of its own. Screenshots are taken at
a desktop and a phone width, whole pages, into `tests/webui/screenshots/` (kept out of git)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).parent / "screenshots"
WIDTHS = {"desktop": 1280, "phone": 390}
WAIT = 120.0   # seconds a condition may take on a busy machine; the tests wait on conditions, not on time


def chromium(download_dir: Path, language: str = "en-US") -> WebDriver:
    """A headless Chromium whose browser language is `language` and whose downloads go to `download_dir`."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    assert not missing, f"{missing} missing: install Debian's chromium, chromium-driver (.ci/debian-packages)"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--lang={language}", "--window-size=1280,900", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {
        "intl.accept_languages": language, "download.default_directory": str(download_dir),
        "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def wait(driver: WebDriver, condition: Callable[[WebDriver], Any], timeout: float = WAIT) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element("id", element_id).text)


def find(driver: WebDriver, selector: str) -> list[WebElement]:
    return list(driver.find_elements("css selector", selector))


def set_width(driver: WebDriver, width: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600})


def screenshots(driver: WebDriver, name: str) -> dict[str, int]:
    """Whole-page screenshots `<name>-desktop.png` (1280 px) and `<name>-phone.png` (390 px); answers how
    far each layout's content reaches to the right (wider than the window: it scrolls sideways)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    reach = {}
    for kind, width in WIDTHS.items():
        set_width(driver, width)
        height = min(int(driver.execute_script("return document.documentElement.scrollHeight")), 12000)
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        (SCREENSHOTS / f"{name}-{kind}.png").write_bytes(base64.b64decode(shot["data"]))
        reach[kind] = int(driver.execute_script("return document.documentElement.scrollWidth"))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return reach
