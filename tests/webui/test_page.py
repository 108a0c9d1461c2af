"""The page as the gateway serves it: at / without a key, every asset from the gateway itself, a config that
tells the served release and whether keys are on, the vendored libraries as pinned; and in Chromium, the
browser's language followed, a working switch, labelled controls that the keyboard reaches."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from devkit.stack import Stack
from tests.gateway.conftest import Gateway
from tests.webui.browser import screenshots, text_of
from tests.webui.conftest import open_page

pytestmark = pytest.mark.slow

WEBUI = Path(__file__).resolve().parents[2] / "webui"
STATIC = WEBUI / "static"
LINKED = re.compile(r"""(?:src|href)\s*=\s*["']([^"']*)["']""")
IMPORTED = re.compile(r"""^import .* from "\./([\w-]+\.js)";$""", re.MULTILINE)
FONTS = re.compile(r"url\((fonts/[\w-]+\.woff2)\)")
VENDOR = STATIC / "vendor"
LIBRARIES = ("markdown-it", "katex", "texmath", "dompurify")


@pytest.fixture(scope="module")
def open_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway alone, keys off; nothing behind it (the page and its config need no Triton)."""
    workdir = tmp_path_factory.mktemp("open-gateway")
    gateway = Gateway({"HPS_TRITON_URL": "127.0.0.1:9", "HPS_JOB_DATA_DIR": str(workdir / "jobs")}, workdir)
    yield gateway.wait_healthy()
    gateway.stop()


def get(url: str, kind: str) -> httpx.Response:
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200 and kind in answer.headers["content-type"], (url, answer.headers)
    return answer


def test_the_page_and_every_asset_come_from_the_gateway_without_a_key(stack: Stack) -> None:
    page = get(stack.url + "/", "text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    links = LINKED.findall(page.text)
    assert links and all(not re.match(r"\w+:|//", link) for link in links if link != "data:,"), links
    kinds = {".js": "javascript", ".css": "text/css"}
    for link in links:
        if link.startswith("ui/assets/"):
            get(f"{stack.url}/{link}", kinds[Path(link).suffix])
    modules, todo = set(), ["main.js"]          # the page's own modules, as the browser finds them
    while todo:
        module = todo.pop()
        modules.add(module)
        todo += set(IMPORTED.findall(get(f"{stack.url}/ui/assets/js/{module}", "javascript").text)) - modules
    assert modules == {p.name for p in (STATIC / "js").glob("*.js")}
    css = get(f"{stack.url}/ui/assets/vendor/katex/katex.min.css", "text/css").text
    fonts = set(FONTS.findall(css))
    assert len(fonts) == 20
    for font in fonts:
        assert len(get(f"{stack.url}/ui/assets/vendor/katex/{font}", "font/woff2").content) > 1000
    own = [WEBUI / "index.html", STATIC / "app.css", *(STATIC / "js").glob("*.js")]
    hosts = {host for p in own for host in re.findall(r"https?://([\w.-]+)", p.read_text())}
    assert hosts == {"www.w3.org"}         # SVG's namespace, which is no address: no CDN, no other host


def test_the_config_says_which_release_and_whether_keys_are_on(stack: Stack, open_gateway: Gateway) -> None:
    config = get(stack.url + "/ui/config", "json").json()
    assert config == {"model": "PaddleOCR-VL-1.6", "apiKeyRequired": True, "jobApi": True,
                      "maxFileBytes": 50 * 1024 * 1024, "maxPages": 1000}
    assert httpx.get(f"{stack.url}/api/v2/ocr/jobs/{'0' * 32}", timeout=10).status_code == 401
    assert get(open_gateway.url + "/ui/config", "json").json()["apiKeyRequired"] is False


def test_the_vendored_files_are_those_noted_with_their_licences() -> None:
    """Each vendored file is the one its checksum notes (as taken from its npm tarball), and none is left
    out of the notes; each library has its licence beside it."""
    sums = dict(line.split("  ")[::-1] for line in (VENDOR / "SHA256SUMS").read_text().splitlines())
    files = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()}
    assert set(sums) == files - {"README.md", "SHA256SUMS"}
    changed = [name for name, digest in sums.items()
               if hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() != digest]
    assert changed == []
    assert all(f"{library}/LICENSE" in sums for library in LIBRARIES)
    assert len([name for name in sums if name.startswith("katex/fonts/")]) == 20


def test_the_page_follows_the_browser_language_and_switches(open_gateway: Gateway, tmp_path: Path) -> None:
    """Screenshot `chinese`: the page as a browser set to Chinese first shows it, before any document: the
    form in Chinese, with no API key field (keys are off on this gateway)."""
    driver = open_page(open_gateway.url + "/", tmp_path, "zh-CN")
    try:
        assert driver.find_element("tag name", "h1").text == "文档解析"
        assert text_of(driver, "form-heading") == "文档"
        assert driver.find_element("tag name", "html").get_attribute("lang") == "zh-CN"
        assert not driver.find_element("id", "key").is_displayed()
        assert text_of(driver, "model") == "模型：PaddleOCR-VL-1.6"
        screenshots(driver, "chinese")

        keys = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            import("./ui/assets/js/i18n.js").then(({ STRINGS }) => done(Object.fromEntries(
              Object.entries(STRINGS).map(([language, words]) => [language, Object.keys(words).sort()])
            )));""")
        assert len(keys["en"]) > 40 and keys["zh"] == keys["en"]     # every text in both languages

        unlabelled = driver.execute_script("""
            return [...document.querySelectorAll('input, select, button')]
              .filter(c => !(c.labels?.length || c.getAttribute('aria-label') || c.textContent.trim()))
              .map(c => c.id || c.outerHTML);""")
        assert unlabelled == []

        reached, keyboard = [], ActionChains(driver)
        for _ in range(30):                 # Tab through the page from its top: every control is reached
            keyboard.send_keys(Keys.TAB).perform()
            reached.append(driver.switch_to.active_element.get_attribute("id"))
        assert {"language", "file", "url", "opt-layout", "opt-pages", "opt-seal", "start"} <= set(reached)

        Select(driver.find_element("id", "language")).select_by_value("en")
        assert driver.find_element("tag name", "h1").text == "Document parsing"
        assert driver.find_element("tag name", "html").get_attribute("lang") == "en"
        assert text_of(driver, "model") == "Model: PaddleOCR-VL-1.6"
        driver.refresh()                    # the choice outlives a reload
        assert driver.find_element("tag name", "h1").text == "Document parsing"
    finally:
        driver.quit()
