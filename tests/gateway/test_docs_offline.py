"""/docs and /redoc work offline: their pages load Swagger UI and ReDoc from the gateway itself, and nothing
they reference lies on another host."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from .conftest import Gateway

# Every URL a page names in an attribute or in its inline script (the spec URL and the page's own settings).
ATTRIBUTE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']*)["']""")
IN_SCRIPT = re.compile(r"""(?:url|oauth2RedirectUrl|spec-url)\s*[:=]\s*["']([^"']*)["']""")


@pytest.fixture(scope="module")
def gateway(start_gateway: Any, vlm: Any) -> Gateway:
    return start_gateway(HPS_VLM_URL=vlm.url)  # type: ignore[no-any-return]


def referenced(html: str) -> list[str]:
    return ATTRIBUTE.findall(html) + IN_SCRIPT.findall(html)


@pytest.mark.parametrize("page,assets", [
    ("/docs", {"swagger-ui-bundle.js": "javascript", "swagger-ui.css": "text/css",
               "favicon.png": "image/png"}),
    ("/redoc", {"redoc.standalone.js": "javascript", "favicon.png": "image/png"}),
])
def test_the_page_loads_only_what_the_gateway_serves(gateway: Gateway, page: str,
                                                     assets: dict[str, str]) -> None:
    html = httpx.get(gateway.url + page, timeout=10).text
    urls = referenced(html)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert not re.search(r"https?://|//cdn|fonts\.googleapis", html), html
    assert "/openapi.json" in urls
    for name, kind in assets.items():
        [url] = [u for u in urls if u.endswith("/" + name)]
        answer = httpx.get(gateway.url + url, timeout=10)
        assert answer.status_code == 200 and kind in answer.headers["content-type"], (url, answer.headers)
        assert len(answer.content) > 1000


def test_swagger_ui_asks_no_online_validator(gateway: Gateway) -> None:
    assert '"validatorUrl": null' in httpx.get(gateway.url + "/docs", timeout=10).text
